package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Server-side sessions. The cookie still carries the sealed session, but
// with Config.Sessions set, a session is only valid while its record
// exists: deleting the record (an admin, the person, or the provider's
// back-channel logout) ends the session on every replica at its next request.

// SessionRecord is what the server keeps about a browser session. It never
// holds a token or the cookie's session id: ID is a one-way handle of it.
type SessionRecord struct {
	// ID is the public handle: hex of the first 16 bytes of SHA-256(session id).
	ID string `json:"id"`
	// UserID is issuer|subject.
	UserID string `json:"user_id"`
	// Display is a human label (username, email or subject).
	Display string `json:"display"`
	// ProviderSID is the provider's sid claim from the login's ID token, if
	// any; back-channel logout may name it instead of the subject.
	ProviderSID string    `json:"provider_sid,omitempty"`
	Created     time.Time `json:"created_at"`
	Expires     time.Time `json:"expires_at"`
	RemoteAddr  string    `json:"remote_addr,omitempty"`
	UserAgent   string    `json:"user_agent,omitempty"`
	// Refresh is the provider's current refresh token, sealed with the
	// session key (AES-GCM; a store dump alone cannot read it). It lets the
	// server re-check an open view's identity (RecheckSession) and keeps the
	// browser and the server on the same token when the provider rotates it.
	Refresh string `json:"refresh,omitempty"`
}

// SessionStore keeps session records. Implementations must be safe for
// concurrent use; replicas share one (Redis) so a revocation reaches all.
type SessionStore interface {
	Put(ctx context.Context, rec SessionRecord) error
	// Get reports whether the record exists (and has not expired).
	Get(ctx context.Context, id string) (SessionRecord, bool, error)
	// List returns the unexpired records.
	List(ctx context.Context) ([]SessionRecord, error)
	// Delete removes a record, reporting whether it existed.
	Delete(ctx context.Context, id string) (bool, error)
	// Update replaces a record only if it still exists (so a session ended
	// meanwhile is never brought back), reporting whether it did.
	Update(ctx context.Context, rec SessionRecord) (bool, error)
}

// SessionHandle is the public handle of a session id (Identity.SessionID).
func SessionHandle(sessionID string) string {
	sum := sha256.Sum256([]byte("loggate session\x00" + sessionID))
	return hex.EncodeToString(sum[:16])
}

// ReasonSessionEnded: the session's server-side record is gone.
const ReasonSessionEnded = "session_ended"

// errSessionStore wraps a failing session store: sessions fail closed.
func errSessionStore(err error) error {
	return fmt.Errorf("%w: session store: %w", ErrProviderUnavailable, err)
}

// checkRecord fails a session whose record is gone, and returns the record.
func (a *Authenticator) checkRecord(ctx context.Context, s *session) (SessionRecord, error) {
	if a.cfg.Sessions == nil {
		return SessionRecord{}, nil
	}
	return a.liveRecord(ctx, SessionHandle(s.ID))
}

// liveRecord is the session store's record for handle id; a gone record
// is a *TokenError (ReasonSessionEnded). Sessions must be set.
func (a *Authenticator) liveRecord(ctx context.Context, id string) (SessionRecord, error) {
	rec, ok, err := a.cfg.Sessions.Get(ctx, id)
	if err != nil {
		return rec, errSessionStore(err)
	}
	if !ok {
		return rec, tokenErr(ReasonSessionEnded, "session ended on the server")
	}
	return rec, nil
}

const purposeRefresh = "refresh"

// sealRefresh seals a refresh token for a session record ("" stays "").
func (a *Authenticator) sealRefresh(rt string) string {
	if rt == "" {
		return ""
	}
	v, err := a.seal(purposeRefresh, rt)
	if err != nil {
		return ""
	}
	return v
}

// openRefresh opens a record's sealed refresh token.
func (a *Authenticator) openRefresh(sealed string) (string, bool) {
	var rt string
	if sealed == "" || a.open(purposeRefresh, sealed, &rt) != nil || rt == "" {
		return "", false
	}
	return rt, true
}

// keepRefresh stores a rotated refresh token in the record.
func (a *Authenticator) keepRefresh(ctx context.Context, rec SessionRecord, rt string) error {
	if a.cfg.Sessions == nil || rec.ID == "" {
		return nil
	}
	if sealed := a.sealRefresh(rt); sealed != "" {
		if old, ok := a.openRefresh(rec.Refresh); ok && old == rt {
			return nil
		}
		rec.Refresh = sealed
		ok, err := a.cfg.Sessions.Update(ctx, rec)
		if err != nil {
			return errSessionStore(err)
		}
		if !ok {
			return tokenErr(ReasonSessionEnded, "session ended on the server during a refresh")
		}
	}
	return nil
}

// ErrNoRecheck: the session cannot be re-checked (no server-side record
// store, or the provider issued no refresh token).
var ErrNoRecheck = errors.New("session cannot be re-checked")

// RecheckSession refreshes a live session's tokens through the provider,
// now, whatever their expiry, and returns the identity the new ID token
// names (groups as the provider says today). A refused refresh (the
// provider disabled the person, or revoked the grant) deletes the record,
// so the session ends everywhere, and returns a *TokenError. Used to
// re-check open views.
func (a *Authenticator) RecheckSession(ctx context.Context, id string) (Identity, error) {
	if a.cfg.Sessions == nil {
		return Identity{}, ErrNoRecheck
	}
	rec, err := a.liveRecord(ctx, id)
	if err != nil {
		return Identity{}, err
	}
	rt, ok := a.openRefresh(rec.Refresh)
	if !ok {
		return Identity{}, ErrNoRecheck
	}
	iss, sub, _ := strings.Cut(rec.UserID, "|")
	old := &session{ID: id, Issuer: iss, Subject: sub, Refresh: rt}
	s, err := a.refreshWith(ctx, "", "loggate view re-check", old, true)
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) && te.Reason != ReasonProvider {
			if _, derr := a.cfg.Sessions.Delete(ctx, id); derr != nil {
				a.log.Error("delete session after a refused refresh", "err", derr)
			}
		}
		return Identity{}, err
	}
	if err := a.keepRefresh(ctx, rec, s.Refresh); err != nil {
		return Identity{}, err
	}
	out := s.identity()
	out.SessionID = ""
	return out, nil
}

// Sessions lists the live browser sessions, newest first. Without a
// session store it returns an empty list.
func (a *Authenticator) Sessions(ctx context.Context) ([]SessionRecord, error) {
	if a.cfg.Sessions == nil {
		return nil, nil
	}
	recs, err := a.cfg.Sessions.List(ctx)
	if err != nil {
		return nil, errSessionStore(err)
	}
	slices.SortFunc(recs, func(x, y SessionRecord) int { return y.Created.Compare(x.Created) })
	return recs, nil
}

// EndSession deletes a session's record by its public handle, reporting
// whether it existed. The session's next request is refused.
func (a *Authenticator) EndSession(ctx context.Context, id string) (SessionRecord, bool, error) {
	if a.cfg.Sessions == nil {
		return SessionRecord{}, false, nil
	}
	rec, ok, err := a.cfg.Sessions.Get(ctx, id)
	if err != nil {
		return rec, false, errSessionStore(err)
	}
	if !ok {
		return rec, false, nil
	}
	ok, err = a.cfg.Sessions.Delete(ctx, id)
	if err != nil {
		return rec, false, errSessionStore(err)
	}
	return rec, ok, nil
}

// MemorySessions is a SessionStore for one instance. With a path, every
// change is written to that file (atomically, mode 0600) and the file is
// read at start, so sessions and revocations survive a restart.
type MemorySessions struct {
	path string
	now  func() time.Time

	mu   sync.Mutex // guards recs and file writes
	recs map[string]SessionRecord
}

var _ SessionStore = (*MemorySessions)(nil)

// NewMemorySessions opens the store; path "" keeps records in memory only.
// now is the clock (nil: time.Now).
func NewMemorySessions(path string, now func() time.Time) (*MemorySessions, error) {
	if now == nil {
		now = time.Now
	}
	m := &MemorySessions{path: path, now: now, recs: map[string]SessionRecord{}}
	if path == "" {
		return m, nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return m, nil
	case err != nil:
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	var recs []SessionRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, fmt.Errorf("read sessions %s: %w", path, err)
	}
	for _, r := range recs {
		m.recs[r.ID] = r
	}
	return m, nil
}

func (m *MemorySessions) Put(_ context.Context, rec SessionRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[rec.ID] = rec
	return m.saveLocked()
}

func (m *MemorySessions) Update(_ context.Context, rec SessionRecord) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[rec.ID]; !ok {
		return false, nil
	}
	m.recs[rec.ID] = rec
	return true, m.saveLocked()
}

func (m *MemorySessions) Get(_ context.Context, id string) (SessionRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[id]
	if ok && !m.now().Before(r.Expires) {
		return SessionRecord{}, false, nil
	}
	return r, ok, nil
}

func (m *MemorySessions) List(_ context.Context) ([]SessionRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	out := make([]SessionRecord, 0, len(m.recs))
	for _, r := range m.recs {
		if now.Before(r.Expires) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *MemorySessions) Delete(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.recs[id]; !ok {
		return false, nil
	}
	delete(m.recs, id)
	return true, m.saveLocked()
}

// saveLocked drops expired records and writes the file. Caller holds mu.
func (m *MemorySessions) saveLocked() error {
	now := m.now()
	recs := make([]SessionRecord, 0, len(m.recs))
	for id, r := range m.recs {
		if !now.Before(r.Expires) {
			delete(m.recs, id)
			continue
		}
		recs = append(recs, r)
	}
	if m.path == "" {
		return nil
	}
	b, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	if err := replaceFile(m.path, ".sessions-*", b); err != nil {
		return fmt.Errorf("write sessions: %w", err)
	}
	return nil
}

// replaceFile writes b to path atomically: a synced temporary file (named
// by pattern, beside path, mode 0600) renamed over it.
func replaceFile(path, pattern string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

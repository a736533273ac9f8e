package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// seenInterval is how often a used session's last-seen time is re-issued.
const seenInterval = time.Minute

// Authenticate identifies the caller of r without writing a response:
// an Authorization: Bearer token first, else the session cookie. It returns
// ErrNoCredentials, a *TokenError (errors.Is ErrInvalidToken), ErrAudit or
// ErrProviderUnavailable. Clients must only ever be told "invalid token".
//
// Because it cannot set cookies, a session whose ID token has expired is
// refused (Reason "expired") rather than refreshed, and last-seen is not
// updated; browser routes should use AuthenticateHTTP instead.
func (a *Authenticator) Authenticate(r *http.Request) (Identity, error) {
	return a.authenticate(nil, r)
}

// AuthenticateHTTP is Authenticate for routes that may set cookies: it
// refreshes an expired ID token through the provider's token endpoint,
// re-issues the session cookie to record activity (at most once a minute),
// and clears a cookie that can no longer be used.
func (a *Authenticator) AuthenticateHTTP(w http.ResponseWriter, r *http.Request) (Identity, error) {
	return a.authenticate(w, r)
}

func (a *Authenticator) authenticate(w http.ResponseWriter, r *http.Request) (Identity, error) {
	if authz := r.Header.Get("Authorization"); authz != "" {
		scheme, tok, _ := strings.Cut(authz, " ")
		tok = strings.TrimSpace(tok)
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			a.fail(r, ReasonMalformed, "authorization header is not a bearer token", "")
			return Identity{}, tokenErr(ReasonMalformed, "authorization header is not a bearer token")
		}
		id, err := a.verifyBearer(r.Context(), tok, r)
		if err != nil {
			var te *TokenError
			if errors.As(err, &te) {
				a.fail(r, te.Reason, te.Detail, a.TokenHash(tok))
			}
			return Identity{}, err
		}
		return id, nil
	}
	id, err := a.sessionIdentity(w, r)
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) {
			a.fail(r, te.Reason, te.Detail, "")
			if w != nil {
				a.clearCookie(w, a.sessionCookieName())
			}
		}
		return Identity{}, err
	}
	return id, nil
}

func (a *Authenticator) sessionIdentity(w http.ResponseWriter, r *http.Request) (Identity, error) {
	s, err := a.readSession(r)
	if err != nil {
		return Identity{}, err
	}
	now := a.now()
	if err := a.checkLifetime(s, now); err != nil {
		return Identity{}, err
	}
	rec, err := a.checkRecord(r.Context(), s)
	if err != nil {
		return Identity{}, err
	}
	if rt, ok := a.openRefresh(rec.Refresh); ok {
		s.Refresh = rt // the server's copy is current when the provider rotates tokens
	}
	if now.After(time.Unix(s.TokenExp, 0).Add(a.cfg.ClockSkew)) {
		if s.Refresh == "" {
			return Identity{}, tokenErr(ReasonExpired, "ID token expired and no refresh token")
		}
		if w == nil {
			return Identity{}, tokenErr(ReasonExpired, "ID token expired; refresh needs a response writer")
		}
		s, err = a.refresh(r, s)
		if err != nil {
			return Identity{}, err
		}
		if err := a.keepRefresh(r.Context(), rec, s.Refresh); err != nil {
			return Identity{}, err
		}
		s.Seen = now.Unix()
		if err := a.setSessionCookie(w, s); err != nil {
			return Identity{}, err
		}
		return s.identity(), nil
	}
	if w != nil && now.Sub(time.Unix(s.Seen, 0)) >= seenInterval {
		s.Seen = now.Unix()
		if err := a.setSessionCookie(w, s); err != nil {
			return Identity{}, err
		}
	}
	return s.identity(), nil
}

// refreshGroup de-duplicates concurrent refreshes of one session and briefly
// remembers the result, so parallel requests carrying the old cookie do not
// each spend the (possibly rotating, single-use) refresh token.
type refreshGroup struct {
	mu   sync.Mutex
	runs map[string]*refreshRun // by session id
}

type refreshRun struct {
	done chan struct{}
	s    *session
	err  error
	at   time.Time
}

// refreshResultTTL is how long a refresh result is reused for the same old session.
const refreshResultTTL = 30 * time.Second

func (a *Authenticator) refresh(r *http.Request, old *session) (*session, error) {
	g := &a.refreshes
	g.mu.Lock()
	if g.runs == nil {
		g.runs = make(map[string]*refreshRun)
	}
	now := a.now()
	for sid, run := range g.runs { // bounded by sessions refreshing within the TTL
		select {
		case <-run.done:
			if now.Sub(run.at) > refreshResultTTL {
				delete(g.runs, sid)
			}
		default:
		}
	}
	if run, ok := g.runs[old.ID]; ok {
		g.mu.Unlock()
		<-run.done
		if run.err != nil {
			return nil, run.err
		}
		cp := *run.s
		return &cp, nil
	}
	run := &refreshRun{done: make(chan struct{})}
	g.runs[old.ID] = run
	g.mu.Unlock()

	run.s, run.err = a.doRefresh(r, old)
	run.at = a.now()
	close(run.done)
	if run.err != nil {
		// Waiters already hold the error; a later request may try again.
		g.mu.Lock()
		if g.runs[old.ID] == run {
			delete(g.runs, old.ID)
		}
		g.mu.Unlock()
		return nil, run.err
	}
	cp := *run.s
	return &cp, nil
}

func (a *Authenticator) doRefresh(r *http.Request, old *session) (*session, error) {
	return a.refreshWith(r.Context(), a.cfg.ClientAddr(r), truncate(r.UserAgent(), 256), old, false)
}

// refreshWith spends old's refresh token. With requireIDToken (a re-check
// must learn today's groups), a response without an ID token is refused.
func (a *Authenticator) refreshWith(ctx context.Context, addr, ua string, old *session, requireIDToken bool) (*session, error) {
	p, err := a.provider(ctx)
	if err != nil {
		return nil, err
	}
	src := p.oauth.TokenSource(a.clientCtx(ctx), &oauth2.Token{RefreshToken: old.Refresh, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			// invalid_grant and other OAuth errors: the grant is gone, log in again.
			return nil, tokenErr(ReasonExpired, "refresh refused by provider (%s)", re.ErrorCode)
		}
		a.log.Warn("token refresh failed", "err", err)
		return nil, tokenErr(ReasonProvider, "refresh failed")
	}
	now := a.now()
	s := *old
	s.Groups = append([]string(nil), old.Groups...)
	if tok.RefreshToken != "" {
		s.Refresh = tok.RefreshToken
	}
	if raw, ok := tok.Extra("id_token").(string); ok && raw != "" {
		idt, c, err := a.verifyWith(ctx, p.verifiers[a.cfg.ClientID], p, raw, now)
		if err != nil {
			return nil, err
		}
		if idt.Subject != old.Subject {
			return nil, tokenErr(ReasonMalformed, "refreshed ID token names another subject")
		}
		id, err := a.identity(idt.Issuer, c, idt)
		if err != nil {
			return nil, err
		}
		s.Email, s.Name, s.Username, s.Groups = id.Email, id.Name, id.Username, id.Groups
		s.TokenExp = idt.Expiry.Unix()
		s.IDToken = raw
	} else if requireIDToken {
		return nil, tokenErr(ReasonProvider, "refresh returned no ID token")
	} else {
		// Some providers omit the ID token on refresh: keep the claims, trust
		// them until the new access token expires.
		exp := tok.Expiry
		if exp.IsZero() || exp.Sub(now) > time.Hour {
			exp = now.Add(time.Hour)
		}
		s.TokenExp = exp.Unix()
	}
	id := s.identity()
	if err := a.emit(ctx, Event{Action: ActionRefresh, Identity: &id, RemoteAddr: addr, UserAgent: ua}); err != nil {
		a.log.Error("audit auth.refresh failed", "err", err)
		return nil, err
	}
	return &s, nil
}

// identityKey is the context key for WithIdentity and FromContext.
type identityKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity stored by WithIdentity.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

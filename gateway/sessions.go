package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
)

// Server-side browser sessions: GET /api/v1/sessions lists them (an admin
// sees everyone's, anyone else their own), DELETE /api/v1/sessions/{id}
// ends one (admins any, a person their own; someone else's id is 404,
// exactly like an unknown one). Ending a session is audited as auth.logout
// with details.by = "admin", "self" or "provider", refuses the session's
// next request on every replica, and closes the tails it opened at once
// with close code CloseSessionEnded.

// CloseSessionEnded closes a tail whose browser session was ended.
const CloseSessionEnded = 4007

var endSession = tailEnd{"session_ended", CloseSessionEnded, "session ended"}

// ControlSessionEnded tells every replica to close the tails a session
// opened; ControlEvent.SessionID names the session's handle.
const ControlSessionEnded = "session_ended"

// SessionManager is the server-side session store as the gateway uses it
// (*auth.Authenticator implements it).
type SessionManager interface {
	Sessions(ctx context.Context) ([]auth.SessionRecord, error)
	EndSession(ctx context.Context, id string) (auth.SessionRecord, bool, error)
}

var _ SessionManager = (*auth.Authenticator)(nil)

// sessionView is a session as the API shows it.
type sessionView struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Display    string    `json:"display"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Current    bool      `json:"current"`
}

func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if s.cfg.Sessions == nil {
		writeJSON(w, http.StatusOK, map[string]any{"items": []sessionView{}})
		return nil
	}
	recs, err := s.cfg.Sessions.Sessions(r.Context())
	if err != nil {
		return errUnavailable("session store unavailable", err)
	}
	admin := s.allowed(r.Context(), who, "manage_sessions")
	current := ""
	if who.SessionID != "" {
		current = auth.SessionHandle(who.SessionID)
	}
	items := []sessionView{}
	for _, rec := range recs {
		if !admin && rec.UserID != who.ID() {
			continue
		}
		items = append(items, sessionView{ID: rec.ID, UserID: rec.UserID, Display: rec.Display, CreatedAt: rec.Created,
			ExpiresAt: rec.Expires, RemoteAddr: rec.RemoteAddr, UserAgent: rec.UserAgent, Current: rec.ID == current})
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	id := r.PathValue("id")
	notFound := errNotFound("no such session")
	if s.cfg.Sessions == nil || len(id) != 32 {
		return notFound
	}
	recs, err := s.cfg.Sessions.Sessions(r.Context())
	if err != nil {
		return errUnavailable("session store unavailable", err)
	}
	var rec *auth.SessionRecord
	for i := range recs {
		if recs[i].ID == id {
			rec = &recs[i]
		}
	}
	by := "self"
	switch {
	case rec == nil:
		return notFound
	case rec.UserID != who.ID():
		if !s.allowed(r.Context(), who, "manage_sessions") {
			return notFound // never a hint that someone else's session exists
		}
		by = "admin"
	}
	if err := s.EndSessions(r.Context(), r, userActor(who), by, "", []auth.SessionRecord{*rec}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// EndSessions ends sessions: for each, auth.logout is recorded first (fail
// closed: without the record nothing ends), then the record is deleted and
// the session's tails on every replica are closed. by is "admin", "self" or
// "provider"; reason is an optional detail.
func (s *Server) EndSessions(ctx context.Context, r *http.Request, actor audit.Actor, by, reason string, recs []auth.SessionRecord) error {
	for _, rec := range recs {
		details := map[string]any{"by": by, "session_id": rec.ID, "user_id": rec.UserID}
		if reason != "" {
			details["reason"] = reason
		}
		if err := s.record(ctx, r, audit.Event{Action: auth.ActionLogout, Actor: actor, Outcome: "success",
			Details: details}); err != nil {
			return errUnavailable("audit trail unavailable; the session was not ended", err)
		}
		if _, _, err := s.cfg.Sessions.EndSession(ctx, rec.ID); err != nil {
			if errors.Is(err, auth.ErrProviderUnavailable) {
				return errUnavailable("session store unavailable", err)
			}
			return err
		}
		s.broadcast(ctx, ControlEvent{Kind: ControlSessionEnded, SessionID: rec.ID, Reason: by})
	}
	return nil
}

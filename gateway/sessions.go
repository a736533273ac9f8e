package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
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
const CloseSessionEnded = api.CloseSessionEnded

var endSession = tailEnd{api.EndSession, CloseSessionEnded, "session ended"}

// ControlSessionEnded tells every replica to close the tails a session
// opened; ControlEvent.SessionID names the session's handle.
const ControlSessionEnded = "session_ended"

// SessionManager is the server-side session store as the gateway uses it
// (*auth.Authenticator implements it).
type SessionManager interface {
	Sessions(ctx context.Context) ([]auth.SessionRecord, error)
	EndSession(ctx context.Context, id string) (auth.SessionRecord, bool, error)
	// VerifyLogoutToken verifies an OIDC back-channel logout token (and
	// reports a refusal as auth.failed).
	VerifyLogoutToken(ctx context.Context, r *http.Request, raw string) (auth.LogoutRequest, error)
	// RecheckSession refreshes a session at the provider and returns today's identity.
	RecheckSession(ctx context.Context, id string) (auth.Identity, error)
}

var _ SessionManager = (*auth.Authenticator)(nil)

func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if s.cfg.Sessions == nil {
		writeJSON(w, http.StatusOK, map[string]any{"items": []api.Session{}})
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
	items := []api.Session{}
	for _, rec := range recs {
		if !admin && rec.UserID != who.ID() {
			continue
		}
		items = append(items, api.Session{ID: rec.ID, UserID: rec.UserID, Display: rec.Display, CreatedAt: rec.Created,
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

// handleBackchannelLogout is the OpenID Connect Back-Channel Logout 1.0
// endpoint: POST /auth/backchannel-logout with a form field logout_token.
// A valid token ends the matching sessions and their tails (auth.logout,
// by: provider) and answers 200; a refused one answers 400 with
// {"error":"invalid_request","reason":...}, ends nothing, and is audited as
// auth.failed. A token naming no live session is refused the same way.
func (s *Server) handleBackchannelLogout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	refuse := func(reason, desc string) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "reason": reason,
			"error_description": desc})
	}
	if s.cfg.Sessions == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "unsupported", "error_description": "no server-side sessions"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		refuse(auth.ReasonMalformed, "the body must be an application/x-www-form-urlencoded form of at most 64 KiB")
		return
	}
	ctx := r.Context()
	lr, err := s.cfg.Sessions.VerifyLogoutToken(ctx, r, r.PostForm.Get("logout_token"))
	var te *auth.TokenError
	switch {
	case errors.As(err, &te):
		refuse(te.Reason, te.Detail)
		return
	case err != nil:
		s.log.Warn("back-channel logout: cannot verify", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	recs, err := s.cfg.Sessions.Sessions(ctx)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	var match []auth.SessionRecord
	for _, rec := range recs {
		if lr.Matches(rec) {
			match = append(match, rec)
		}
	}
	if len(match) == 0 {
		detail := "logout token names no live session"
		if err := s.RecordAuth(ctx, auth.Event{Action: auth.ActionFailed, Reason: auth.ReasonUnknownSession,
			Detail: detail, RemoteAddr: s.ClientAddr(r), UserAgent: r.UserAgent()}); err != nil {
			s.log.Error("audit auth.failed for a back-channel logout", "err", err)
		}
		refuse(auth.ReasonUnknownSession, detail)
		return
	}
	actor := audit.Actor{Kind: "system", Issuer: lr.Issuer, Subject: lr.Subject, Name: "identity provider"}
	if err := s.EndSessions(ctx, r, actor, "provider", "", match); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	w.WriteHeader(http.StatusOK)
}

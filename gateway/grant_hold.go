package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/store"
)

// holdWindow is what a legal hold on g keeps: every entry its views could
// have shown, from the lookback before it was issued to its end (or its
// current expiry while it runs; placing the hold again after an extension
// widens it).
func holdWindow(g store.Grant) (from, to time.Time) {
	to = g.ExpiresAt
	if !g.EndedAt.IsZero() && g.EndedAt.Before(to) {
		to = g.EndedAt
	}
	return g.IssuedAt.Add(-g.MaxLookback), to
}

// handleGrantLegalHold places or releases a legal hold on the log lines a
// grant's views could show, so that a replay still finds them after the
// backlog's retention would have removed them. loggate-admins only.
func (s *Server) handleGrantLegalHold(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	if !s.allowed(ctx, who, "manage_audit") {
		s.recordBestEffort(ctx, r, audit.Event{Action: "grant.legal_hold", Actor: userActor(who), Outcome: "denied",
			Reason: "not a member of loggate-admins", Target: audit.Target{GrantID: truncate(r.PathValue("id"), 80)}})
		return errForbidden("legal holds are placed by loggate-admins")
	}
	on, reason, err := s.legalHold(r)
	if err != nil {
		return err
	}
	g, err := s.loadGrant(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !s.cfg.Hub.CanHold() {
		return &apiError{Status: http.StatusConflict, Code: "hold_unsupported", Message: logs.ErrHoldUnsupported.Error()}
	}
	from, to := holdWindow(g)
	id := "grant:" + g.ID
	details := map[string]any{"on": on, "from": from.UTC().Format(time.RFC3339Nano), "to": to.UTC().Format(time.RFC3339Nano)}
	if err := s.record(ctx, r, audit.Event{Action: "grant.legal_hold", Actor: userActor(who), Outcome: "success",
		Reason: reason, Target: grantTarget(g), Details: details}); err != nil {
		return err
	}
	if on {
		err = s.cfg.Hub.PlaceHold(ctx, logs.Hold{ID: id, Stream: logs.Stream{Service: g.Service, Env: g.Env}, From: from, To: to, Reason: reason})
	} else {
		err = s.cfg.Hub.ReleaseHold(ctx, id)
	}
	switch {
	case errors.Is(err, logs.ErrHoldUnsupported):
		return &apiError{Status: http.StatusConflict, Code: "hold_unsupported", Message: err.Error()}
	case err != nil:
		return errUnavailable("log backlog unavailable", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"grant_id": g.ID, "on": on, "from": from.UTC(), "to": to.UTC()})
	return nil
}

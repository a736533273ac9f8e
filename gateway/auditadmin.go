package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
)

// auditAdmin is what a local audit store offers loggate-admins: retention,
// legal hold and signing-key rotation. A store without it (Redis) answers
// 404 on these endpoints.
type auditAdmin interface {
	SetLegalHold(ctx context.Context, on bool, reason string, actor audit.Actor) (audit.Event, error)
	LegalHold(ctx context.Context) (audit.LegalHold, error)
	Purge(ctx context.Context, before time.Time, actor audit.Actor) (audit.PurgeResult, error)
	RotateKey(ctx context.Context, actor audit.Actor) error
	VerifierKeys() []string
}

var _ auditAdmin = (*audit.Store)(nil)

func (s *Server) auditAdmin(r *http.Request, who auth.Identity) (auditAdmin, error) {
	if !s.allowed(r.Context(), who, "manage_audit") {
		return nil, errForbidden("audit retention and keys are managed by loggate-admins")
	}
	a, ok := s.cfg.Audit.(auditAdmin)
	if !ok {
		return nil, errNotFound("this audit backend has no retention or key management")
	}
	return a, nil
}

func (s *Server) handleGetLegalHold(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if !s.allowed(r.Context(), who, "manage_audit") && !s.allowed(r.Context(), who, "read_audit") {
		return errForbidden("the legal hold is for security and loggate-admins")
	}
	a, ok := s.cfg.Audit.(auditAdmin)
	if !ok {
		return errNotFound("this audit backend has no legal hold")
	}
	h, err := a.LegalHold(r.Context())
	if err != nil {
		return errUnavailable("audit trail unavailable", err)
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

type legalHoldBody struct {
	On     *bool  `json:"on"`
	Reason string `json:"reason"`
}

// legalHold reads a legal hold's body: "on" is required, and so is the
// reason (cleaned).
func (s *Server) legalHold(r *http.Request) (on bool, reason string, err error) {
	var body legalHoldBody
	if err := decodeBody(r, &body); err != nil {
		return false, "", err
	}
	if body.On == nil {
		return false, "", errBadRequest(`"on" (true or false) is required`)
	}
	reason, err = s.cleanText("reason", body.Reason, true)
	return *body.On, reason, err
}

func (s *Server) handleSetLegalHold(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	a, err := s.auditAdmin(r, who)
	if err != nil {
		return err
	}
	on, reason, err := s.legalHold(r)
	if err != nil {
		return err
	}
	if _, err := a.SetLegalHold(r.Context(), on, reason, userActor(who)); err != nil {
		return auditAdminError(err)
	}
	h, err := a.LegalHold(r.Context())
	if err != nil {
		return errUnavailable("audit trail unavailable", err)
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

type purgeBody struct {
	Before string `json:"before"` // parsed here, so a bad time names the field
}

// handlePurge empties the records of events older than "before", keeping
// their hashes so the trail still verifies; refused under a legal hold.
func (s *Server) handlePurge(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	a, err := s.auditAdmin(r, who)
	if err != nil {
		return err
	}
	var body purgeBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if body.Before == "" {
		return errBadRequest(`"before" is required: an RFC 3339 time in the past`)
	}
	before, perr := time.Parse(time.RFC3339Nano, body.Before)
	if perr != nil || before.After(s.now()) {
		return errBadRequest(fmt.Sprintf(`"before": time %q is not an RFC 3339 time in the past (e.g. "2026-01-02T15:04:05Z")`, truncate(body.Before, 40)))
	}
	res, err := a.Purge(r.Context(), before, userActor(who))
	if err != nil {
		return auditAdminError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"from_seq": res.From, "to_seq": res.To, "count": res.Count,
		"event_id": res.Event.ID})
	return nil
}

func (s *Server) handleRotateAuditKey(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	a, err := s.auditAdmin(r, who)
	if err != nil {
		return err
	}
	if err := a.RotateKey(r.Context(), userActor(who)); err != nil {
		return auditAdminError(err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"verifier_keys": a.VerifierKeys()})
	return nil
}

func auditAdminError(err error) error {
	switch {
	case errors.Is(err, audit.ErrLegalHold):
		return errConflict("a legal hold is in force: nothing may be purged")
	case errors.Is(err, audit.ErrInvalid):
		return errConflict(err.Error())
	}
	return errAudit(err)
}

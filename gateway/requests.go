package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// nameRE is what a service or environment name may look like.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// parseDuration accepts Go duration syntax from one second up.
func parseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errBadRequest(`"duration" is required (Go duration syntax, e.g. "15m")`)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errBadRequest(fmt.Sprintf("duration %q is not a Go duration (e.g. \"15m\", \"1h30m\")", truncate(s, 40)))
	}
	if d < time.Second {
		return 0, errBadRequest("duration must be at least 1s")
	}
	return d, nil
}

// cleanText validates and redacts a free-text reason or comment.
func (s *Server) cleanText(field, v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		if required {
			return "", errBadRequest(fmt.Sprintf("%q is required", field))
		}
		return "", nil
	}
	if !utf8.ValidString(v) {
		return "", errBadRequest(fmt.Sprintf("%q is not valid UTF-8", field))
	}
	if n := utf8.RuneCountInString(v); n > s.limits.MaxTextLen {
		return "", errBadRequest(fmt.Sprintf("%q is %d characters; at most %d", field, n, s.limits.MaxTextLen))
	}
	for _, c := range v {
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f || c >= 0x80 && c <= 0x9f {
			return "", errBadRequest(fmt.Sprintf("%q contains control characters", field))
		}
		// Bidirectional overrides can make a reason read differently to an
		// approver than it is stored (display spoofing).
		if c >= 0x202a && c <= 0x202e || c >= 0x2066 && c <= 0x2069 {
			return "", errBadRequest(fmt.Sprintf("%q contains bidirectional control characters", field))
		}
	}
	red, _ := s.cfg.Redactor.String(v)
	return red, nil
}

func (s *Server) handleCreateRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var body api.CreateRequest
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if err := checkStreamName("service", body.Service); err != nil {
		return err
	}
	if err := checkStreamName("env", body.Env); err != nil {
		return err
	}
	dur, reason, err := s.durationReason(body.Duration, body.Reason)
	if err != nil {
		return err
	}
	level, scope, err := checkLevel(body.Level, body.Scope)
	if err != nil {
		return err
	}
	if known, err := s.knownStream(r.Context(), body.Service, body.Env); err != nil {
		return err
	} else if !known {
		return errNotFound(fmt.Sprintf("unknown stream %s/%s", body.Service, body.Env))
	}
	args := openArgs{service: body.Service, env: body.Env, duration: dur, reason: reason, breakGlass: body.BreakGlass,
		level: level, scope: scope}
	if body.AlertID != "" {
		a, err := s.alertByID(r.Context(), body.AlertID)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
				return errBadRequest(fmt.Sprintf("alert_id %q names no alert", truncate(body.AlertID, 40)))
			}
			return err
		}
		args.alert = &a
	}
	req, grant, err := s.openRequest(r.Context(), r, who, args)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.viewRequest(req, grant))
	return nil
}

type openArgs struct {
	service, env string
	duration     time.Duration
	reason       string
	breakGlass   bool
	level        string            // "" or a raised level (see checkLevel)
	scope        map[string]string // nil: the whole service
	extends      *store.Grant      // set for an extension
	alert        *alert.Alert      // the alert the request names; nil when none
}

// openRequest asks policy, audits, and stores a new request, issuing the
// grant at once when policy auto-approves or allows break-glass.
func (s *Server) openRequest(ctx context.Context, r *http.Request, who auth.Identity, a openArgs) (store.Request, *store.Grant, error) {
	now := s.now()
	requester := subjectOf(who)
	action := "request"
	if a.extends != nil {
		action = "extend"
	}
	in := policy.Input{Action: action, Requester: policySubject(requester),
		Service: a.service, Env: a.env, Duration: a.duration, Reason: a.reason, BreakGlass: a.breakGlass, Time: now,
		Level: a.level, Scope: a.scope}
	if al := a.alert; al != nil {
		in.Alert = &policy.Alert{ID: al.ID, Rule: al.Rule, State: al.State, Service: al.Service, Env: al.Env,
			Severity: al.Severity, Count: al.Count}
	}
	dec, perr := s.cfg.Policy.Decide(ctx, in)
	if perr != nil {
		s.log.Error("policy evaluation failed; denying", "err", perr, "request_id", requestID(ctx))
		s.metrics.policyErrors.Inc()
		dec.Allow = false
		if len(dec.Reasons) == 0 {
			dec.Reasons = []string{"policy error: request denied (fail closed)"}
		}
	}
	sd := storeDecision(dec)
	req := store.Request{ID: newID("req_"), Requester: requester, Service: a.service, Env: a.env,
		Duration: a.duration, Reason: a.reason, BreakGlass: a.breakGlass, Level: a.level, Scope: a.scope,
		Decision: sd, Approvals: []store.Approval{},
		CreatedAt: now, UpdatedAt: now}
	if a.extends != nil {
		req.Extends = a.extends.ID
	}
	if a.alert != nil {
		req.AlertID = a.alert.ID
	}
	var refusal string
	req.State, req.PendingUntil, refusal = decideState(dec, a, now)
	if refusal != "" {
		req.Decision.Allow = false
		req.Decision.Reasons = append(req.Decision.Reasons, refusal)
	}
	s.metrics.decisions.WithLabelValues(req.State).Inc()

	target := audit.Target{RequestID: req.ID, Service: req.Service, Env: req.Env}
	base := audit.Event{Actor: userActor(who), Target: target, DecisionID: dec.ID, PolicyRevision: dec.Revision}
	created := base
	created.Action = "request.created"
	created.Outcome = "success"
	created.Reason = req.Reason
	created.Details = map[string]any{"state": req.State, "duration": a.duration.String(), "break_glass": a.breakGlass,
		"approvals_required": dec.ApprovalsRequired, "approver_groups": dec.ApproverGroups}
	if a.level != "" {
		created.Details["level"] = a.level
		if a.scope != nil {
			created.Details["scope"] = a.scope
		}
	}
	if a.extends != nil {
		created.Target.GrantID = a.extends.ID
		created.Details["extends"] = a.extends.ID
	}
	if a.alert != nil {
		created.Details["alert_id"], created.Details["alert_rule"], created.Details["alert_state"] = a.alert.ID, a.alert.Rule, a.alert.State
	}
	events := []audit.Event{created}

	var grant *store.Grant
	var review *store.Review
	switch req.State {
	case store.StateDenied:
		ev := base
		ev.Action, ev.Actor, ev.Outcome = "request.denied", systemActor, "denied"
		ev.Reason = strings.Join(req.Decision.Reasons, "; ")
		if perr != nil {
			ev.Outcome = "error"
		}
		events = append(events, ev)
	case store.StateApproved:
		ev := base
		ev.Action, ev.Actor, ev.Outcome = "request.approved", systemActor, "success"
		ev.Details = map[string]any{"auto_approved": !a.breakGlass, "break_glass": a.breakGlass}
		events = append(events, ev)
		if a.breakGlass {
			bg := base
			bg.Action, bg.Outcome, bg.Reason = "request.break_glass", "success", req.Reason
			events = append(events, bg)
		}
		var gev audit.Event
		grant, gev = s.issue(&req, now)
		events = append(events, gev)
		if a.breakGlass {
			review = &store.Review{ID: newID("rev_"), State: store.ReviewOpen, GrantID: grant.ID, RequestID: req.ID,
				Requester: requester, Service: req.Service, Env: req.Env, Reason: req.Reason, CreatedAt: now}
			rev := base
			rev.Action, rev.Actor, rev.Outcome = "review.opened", systemActor, "success"
			rev.Target.ReviewID, rev.Target.GrantID = review.ID, grant.ID
			events = append(events, rev)
		}
	}
	if err := s.recordAll(ctx, r, events...); err != nil {
		return store.Request{}, nil, err
	}
	err := s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		if err := putGrant(tx, grant, req, now); err != nil {
			return err
		}
		if review != nil {
			if err := tx.PutReview(review); err != nil {
				return err
			}
		}
		return tx.PutRequest(&req)
	})
	if err != nil {
		return store.Request{}, nil, err
	}
	if grant != nil && a.extends != nil {
		s.broadcast(ctx, ControlEvent{Kind: ControlExtended, GrantID: grant.ID, ExpiresAt: grant.ExpiresAt})
	}
	s.notify(ctx, req, grant)
	return req, grant, nil
}

// decideState is the state a new request starts in, from policy's
// decision alone: denied, approved at once (auto-approval or break-glass),
// or pending until a deadline. When policy allowed the request but one of
// its limits refuses it, refusal says why. It does no I/O.
func decideState(dec policy.Decision, a openArgs, now time.Time) (state string, pendingUntil time.Time, refusal string) {
	switch {
	case !dec.Allow:
		return store.StateDenied, time.Time{}, ""
	case a.breakGlass && !dec.BreakGlassAllowed:
		return store.StateDenied, time.Time{}, "break-glass is not allowed for you on this stream"
	case dec.MaxDuration > 0 && a.duration > dec.MaxDuration:
		return store.StateDenied, time.Time{}, fmt.Sprintf("duration %s exceeds the maximum of %s", a.duration, dec.MaxDuration)
	case dec.ApprovalsRequired <= 0 || a.breakGlass:
		return store.StateApproved, time.Time{}, ""
	}
	timeout := dec.PendingTimeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	return store.StatePending, now.Add(timeout), ""
}

// issue builds the grant for an approved request (or, for an extension,
// a placeholder the store update replaces) and its audit event. The grant's
// clock starts now, at approval.
func (s *Server) issue(req *store.Request, now time.Time) (*store.Grant, audit.Event) {
	dur := req.Duration
	if req.Decision.MaxDuration > 0 && dur > req.Decision.MaxDuration {
		dur = req.Decision.MaxDuration
	}
	g := &store.Grant{ID: newID("grt_"), RequestID: req.ID, State: store.GrantActive, Holder: req.Requester,
		Service: req.Service, Env: req.Env, BreakGlass: req.BreakGlass, Level: req.Level, Scope: req.Scope,
		IssuedAt: now, ExpiresAt: now.Add(dur),
		MaxLookback: req.Decision.MaxLookback, ApproverGroups: req.Decision.ApproverGroups}
	action := "grant.issued"
	if req.Extends != "" {
		g.ID = req.Extends
		action = "grant.extended"
	}
	req.GrantID = g.ID
	ev := audit.Event{Action: action, Actor: systemActor, Outcome: "success", DecisionID: req.Decision.ID,
		PolicyRevision: req.Decision.Revision,
		Target:         audit.Target{RequestID: req.ID, GrantID: g.ID, Service: g.Service, Env: g.Env},
		Details: map[string]any{"duration": dur.String(), "expires_at": g.ExpiresAt.UTC().Format(time.RFC3339),
			"break_glass": g.BreakGlass, "holder": req.Requester.ID}}
	if g.Level != "" {
		ev.Details["level"] = g.Level
		if g.Scope != nil {
			ev.Details["scope"] = g.Scope
		}
	}
	return g, ev
}

// putGrant stores the grant an approval issues. For an extension it
// instead moves the existing grant's expiry by the requested duration, if
// that grant is still active, and updates *grant to the stored result.
func putGrant(tx *store.Txn, grant *store.Grant, req store.Request, now time.Time) error {
	if grant == nil {
		return nil
	}
	if req.Extends == "" {
		return tx.PutGrant(grant)
	}
	g, err := tx.Grant(req.Extends)
	if err != nil {
		return err
	}
	if !g.ActiveAt(now) {
		return errConflict("the grant to extend has ended")
	}
	g.ExpiresAt = g.ExpiresAt.Add(req.Duration)
	g.ExpiryWarned = false
	*grant = g
	return tx.PutGrant(&g)
}

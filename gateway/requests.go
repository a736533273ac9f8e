package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// nameRE is what a service or environment name may look like.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

type createRequestBody struct {
	Service    string `json:"service"`
	Env        string `json:"env"`
	Duration   string `json:"duration"`
	Reason     string `json:"reason"`
	BreakGlass bool   `json:"break_glass"`
}

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
		if c < 0x20 && c != '\n' && c != '\t' || c == 0x7f {
			return "", errBadRequest(fmt.Sprintf("%q contains control characters", field))
		}
	}
	red, _ := s.cfg.Redactor.String(v)
	return red, nil
}

func (s *Server) handleCreateRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	var body createRequestBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if !nameRE.MatchString(body.Service) || !nameRE.MatchString(body.Env) {
		return errBadRequest(`"service" and "env" are required: lower-case names like "checkout" and "prod"`)
	}
	dur, err := parseDuration(body.Duration)
	if err != nil {
		return err
	}
	reason, err := s.cleanText("reason", body.Reason, true)
	if err != nil {
		return err
	}
	if known, err := s.knownStream(r.Context(), body.Service, body.Env); err != nil {
		return err
	} else if !known {
		return errNotFound(fmt.Sprintf("unknown stream %s/%s", body.Service, body.Env))
	}
	req, grant, err := s.openRequest(r.Context(), r, who, openArgs{service: body.Service, env: body.Env,
		duration: dur, reason: reason, breakGlass: body.BreakGlass})
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
	extends      *store.Grant // set for an extension
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
	dec, perr := s.cfg.Policy.Decide(ctx, policy.Input{Action: action, Requester: policySubject(requester),
		Service: a.service, Env: a.env, Duration: a.duration, Reason: a.reason, BreakGlass: a.breakGlass, Time: now})
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
		Duration: a.duration, Reason: a.reason, BreakGlass: a.breakGlass, Decision: sd, Approvals: []store.Approval{},
		CreatedAt: now, UpdatedAt: now}
	if a.extends != nil {
		req.Extends = a.extends.ID
	}
	switch {
	case !dec.Allow:
		req.State = store.StateDenied
	case a.breakGlass && !dec.BreakGlassAllowed:
		req.State = store.StateDenied
		req.Decision.Allow = false
		req.Decision.Reasons = append(req.Decision.Reasons, "break-glass is not allowed for you on this stream")
	case dec.MaxDuration > 0 && a.duration > dec.MaxDuration:
		req.State = store.StateDenied
		req.Decision.Allow = false
		req.Decision.Reasons = append(req.Decision.Reasons, fmt.Sprintf("duration %s exceeds the maximum of %s", a.duration, dec.MaxDuration))
	case dec.ApprovalsRequired <= 0 || a.breakGlass:
		req.State = store.StateApproved
	default:
		req.State = store.StatePending
		timeout := dec.PendingTimeout
		if timeout <= 0 {
			timeout = time.Hour
		}
		req.PendingUntil = now.Add(timeout)
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
	if a.extends != nil {
		created.Target.GrantID = a.extends.ID
		created.Details["extends"] = a.extends.ID
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

// issue builds the grant for an approved request (or, for an extension,
// a placeholder the store update replaces) and its audit event. The grant's
// clock starts now, at approval.
func (s *Server) issue(req *store.Request, now time.Time) (*store.Grant, audit.Event) {
	dur := req.Duration
	if req.Decision.MaxDuration > 0 && dur > req.Decision.MaxDuration {
		dur = req.Decision.MaxDuration
	}
	g := &store.Grant{ID: newID("grt_"), RequestID: req.ID, State: store.GrantActive, Holder: req.Requester,
		Service: req.Service, Env: req.Env, BreakGlass: req.BreakGlass, IssuedAt: now, ExpiresAt: now.Add(dur),
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

type verdictBody struct {
	Comment string `json:"comment"`
}

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	return s.handleVerdict(w, r, who, "approve")
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	return s.handleVerdict(w, r, who, "deny")
}

// handleVerdict records one approver's approval or denial.
func (s *Server) handleVerdict(w http.ResponseWriter, r *http.Request, who auth.Identity, verdict string) error {
	ctx := r.Context()
	var body verdictBody
	if err := decodeOptionalBody(r, &body); err != nil {
		return err
	}
	comment, err := s.cleanText("comment", body.Comment, verdict == "deny")
	if err != nil {
		return err
	}
	req, err := s.cfg.Store.Request(ctx, r.PathValue("id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("no such request")
		}
		return err
	}
	me := subjectOf(who)
	if req.Requester.ID == me.ID {
		s.recordRefusal(ctx, r, who, "request."+verdictPast(verdict), req, "self-approval refused")
		return errForbidden("you cannot " + verdict + " your own request")
	}
	authz, aerr := s.cfg.Policy.Authorize(ctx, policy.ActionInput{Action: verdict, Actor: policySubject(me),
		Requester: policySubject(req.Requester), Service: req.Service, Env: req.Env, BreakGlass: req.BreakGlass,
		ApproverGroups: req.Decision.ApproverGroups})
	if aerr != nil || !authz.Allow {
		if aerr != nil {
			s.metrics.policyErrors.Inc()
		}
		s.recordRefusal(ctx, r, who, "request."+verdictPast(verdict), req, strings.Join(authz.Reasons, "; "))
		return errForbidden("you may not " + verdict + " this request")
	}
	if req.State != store.StatePending {
		return errConflict("request is " + req.State + ", not pending")
	}
	for _, a := range req.Approvals {
		if a.Approver.ID == me.ID {
			return errConflict("you already decided on this request")
		}
	}
	now := s.now()
	req.Approvals = append(req.Approvals, store.Approval{Approver: me, Verdict: verdict, Comment: comment, Time: now})
	req.UpdatedAt = now
	ev := audit.Event{Actor: userActor(who), Outcome: "success", Reason: comment, DecisionID: authz.ID,
		PolicyRevision: authz.Revision, Target: audit.Target{RequestID: req.ID, Service: req.Service, Env: req.Env},
		Details: map[string]any{"request_decision_id": req.Decision.ID}}
	events := []audit.Event{}
	var grant *store.Grant
	if verdict == "deny" {
		req.State = store.StateDenied
		req.ClosedBy, req.ClosedComment = &me, comment
		ev.Action = "request.denied"
		ev.Outcome = "denied"
		events = append(events, ev)
	} else {
		have, need := len(req.Approvers()), req.Decision.ApprovalsRequired
		ev.Action = "request.approved"
		ev.Details["approvals"] = have
		ev.Details["approvals_required"] = need
		if have < need {
			ev.Action = "request.approval_added"
		}
		events = append(events, ev)
		if have >= need {
			req.State = store.StateApproved
			req.PendingUntil = time.Time{}
			var gev audit.Event
			grant, gev = s.issue(&req, now)
			events = append(events, gev)
		}
	}
	if err := s.recordAll(ctx, r, events...); err != nil {
		return err
	}
	err = s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		cur, err := tx.Request(req.ID)
		if err != nil {
			return err
		}
		if cur.State != store.StatePending || len(cur.Approvals) != len(req.Approvals)-1 {
			return errConflict("request changed while you were deciding; reload it")
		}
		if err := putGrant(tx, grant, req, now); err != nil {
			return err
		}
		return tx.PutRequest(&req)
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			s.recordBestEffort(ctx, r, audit.Event{Action: "request." + verdictPast(verdict), Actor: userActor(who),
				Outcome: "error", Reason: "not applied: " + ae.Message, Target: ev.Target})
		}
		return err
	}
	if grant != nil && req.Extends != "" {
		s.broadcast(ctx, ControlEvent{Kind: ControlExtended, GrantID: grant.ID, ExpiresAt: grant.ExpiresAt})
	}
	s.notify(ctx, req, grant)
	if grant == nil && req.GrantID != "" {
		if g, err := s.cfg.Store.Grant(ctx, req.GrantID); err == nil {
			grant = &g
		}
	}
	writeJSON(w, http.StatusOK, s.viewRequest(req, grant))
	return nil
}

func verdictPast(v string) string {
	if v == "approve" {
		return "approved"
	}
	return "denied"
}

// recordRefusal audits a refused action; a failure to record it is logged,
// since the action is refused either way.
func (s *Server) recordRefusal(ctx context.Context, r *http.Request, who auth.Identity, action string, req store.Request, reason string) {
	s.recordBestEffort(ctx, r, audit.Event{Action: action, Actor: userActor(who), Outcome: "denied", Reason: reason,
		Target: audit.Target{RequestID: req.ID, GrantID: req.GrantID, Service: req.Service, Env: req.Env}})
}

func (s *Server) recordBestEffort(ctx context.Context, r *http.Request, ev audit.Event) {
	if err := s.record(ctx, r, ev); err != nil {
		s.log.Warn("could not audit a refused action", "action", ev.Action, "err", err)
	}
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	req, err := s.cfg.Store.Request(ctx, r.PathValue("id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("no such request")
		}
		return err
	}
	me := subjectOf(who)
	if req.Requester.ID != me.ID {
		return errForbidden("only the requester may cancel a request")
	}
	if req.State != store.StatePending {
		return errConflict("request is " + req.State + ", not pending")
	}
	if err := s.record(ctx, r, audit.Event{Action: "request.cancelled", Actor: userActor(who), Outcome: "success",
		Target: audit.Target{RequestID: req.ID, Service: req.Service, Env: req.Env}}); err != nil {
		return err
	}
	now := s.now()
	err = s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		cur, err := tx.Request(req.ID)
		if err != nil {
			return err
		}
		if cur.State != store.StatePending {
			return errConflict("request is " + cur.State + ", not pending")
		}
		cur.State, cur.UpdatedAt, cur.PendingUntil, cur.ClosedBy = store.StateCancelled, now, time.Time{}, &me
		req = cur
		return tx.PutRequest(&cur)
	})
	if err != nil {
		return err
	}
	s.notify(ctx, req, nil)
	writeJSON(w, http.StatusOK, s.viewRequest(req, nil))
	return nil
}

// canSeeRequest: the requester, an eligible approver, or security.
func (s *Server) canSeeRequest(ctx context.Context, who auth.Identity, req store.Request) bool {
	if req.Requester.ID == who.ID() {
		return true
	}
	return s.mayApprove(ctx, who, req) || s.allowed(ctx, who, "read_audit")
}

func (s *Server) mayApprove(ctx context.Context, who auth.Identity, req store.Request) bool {
	if req.Requester.ID == who.ID() {
		return false
	}
	d, err := s.cfg.Policy.Authorize(ctx, policy.ActionInput{Action: "approve", Actor: policySubject(subjectOf(who)),
		Requester: policySubject(req.Requester), Service: req.Service, Env: req.Env, BreakGlass: req.BreakGlass,
		ApproverGroups: req.Decision.ApproverGroups})
	return err == nil && d.Allow
}

// allowed asks the policy about an action on no particular object.
func (s *Server) allowed(ctx context.Context, who auth.Identity, action string) bool {
	d, err := s.cfg.Policy.Authorize(ctx, policy.ActionInput{Action: action, Actor: policySubject(subjectOf(who))})
	return err == nil && d.Allow
}

func (s *Server) handleGetRequest(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	req, err := s.cfg.Store.Request(ctx, r.PathValue("id"))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errNotFound("no such request")
		}
		return err
	}
	if !s.canSeeRequest(ctx, who, req) {
		return errForbidden("you may not see this request")
	}
	var grant *store.Grant
	if req.GrantID != "" {
		if g, err := s.cfg.Store.Grant(ctx, req.GrantID); err == nil {
			grant = &g
		}
	}
	writeJSON(w, http.StatusOK, s.viewRequest(req, grant))
	return nil
}

// handleListRequests lists requests visible to the caller. scope=mine (the
// default without state=pending) shows one's own; state=pending without a
// scope shows what the caller may act on; scope=all is for security.
func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", store.StatePending, store.StateApproved, store.StateDenied, store.StateCancelled, store.StateLapsed:
	default:
		return errBadRequest("state must be one of pending, approved, denied, cancelled, lapsed")
	}
	limit, err := parseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	scope := q.Get("scope")
	if scope == "" {
		scope = "mine"
		if state == store.StatePending {
			scope = "approvable"
		}
	}
	sq := store.Query{State: state, Limit: limit, Cursor: q.Get("cursor")}
	var keep func(store.Request) bool
	switch scope {
	case "mine":
		sq.Owner = who.ID()
	case "approvable":
		keep = func(req store.Request) bool { return req.State == store.StatePending && s.mayApprove(ctx, who, req) }
	case "all":
		if !s.allowed(ctx, who, "read_audit") {
			return errForbidden("scope=all is for security")
		}
	default:
		return errBadRequest("scope must be mine, approvable or all")
	}
	items := []requestView{}
	cursor := sq.Cursor
	// Filtered scopes may need several store pages to fill one API page.
	for range 20 {
		sq.Cursor = cursor
		reqs, next, err := s.cfg.Store.Requests(ctx, sq)
		if err != nil {
			return err
		}
		for _, req := range reqs {
			if keep == nil || keep(req) {
				items = append(items, s.viewRequest(req, nil))
			}
		}
		cursor = next
		if next == "" || len(items) >= limit {
			break
		}
	}
	writeJSON(w, http.StatusOK, listView[requestView]{Items: items, NextCursor: cursor})
	return nil
}

func parseLimit(v string, def, maxN int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errBadRequest("limit must be a positive integer")
	}
	return min(n, maxN), nil
}

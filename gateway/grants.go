package gateway

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

func (s *Server) loadGrant(ctx context.Context, id string) (store.Grant, error) {
	g, err := s.cfg.Store.Grant(ctx, id)
	return g, notFound(err, "no such grant")
}

func (s *Server) loadRequest(ctx context.Context, id string) (store.Request, error) {
	req, err := s.cfg.Store.Request(ctx, id)
	return req, notFound(err, "no such request")
}

// requestGrant is the grant a request issued, for its view (nil: none, or
// not readable now).
func (s *Server) requestGrant(ctx context.Context, req store.Request) *store.Grant {
	if req.GrantID == "" {
		return nil
	}
	g, err := s.cfg.Store.Grant(ctx, req.GrantID)
	if err != nil {
		return nil
	}
	return &g
}

// mayRevoke: the holder, an eligible approver of the stream, or security,
// as the policy's authorization rules say.
func (s *Server) mayRevoke(ctx context.Context, who auth.Identity, g store.Grant) (policy.ActionDecision, bool) {
	d, err := s.cfg.Policy.Authorize(ctx, policy.ActionInput{Action: "revoke", Actor: policySubject(subjectOf(who)),
		Requester: policySubject(g.Holder), Service: g.Service, Env: g.Env, BreakGlass: g.BreakGlass,
		ApproverGroups: g.ApproverGroups})
	return d, err == nil && d.Allow
}

func (s *Server) canSeeGrant(ctx context.Context, who auth.Identity, g store.Grant) bool {
	if g.Holder.ID == who.ID() {
		return true
	}
	_, ok := s.mayRevoke(ctx, who, g)
	return ok || s.allowed(ctx, who, "read_audit")
}

// handleListGrants lists the caller's grants (all=true: every grant, for
// security). state=active filters to grants still usable.
func (s *Server) handleListGrants(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	q := r.URL.Query()
	sq, err := pageQuery(r)
	if err != nil {
		return err
	}
	state, err := enumParam(q, "state", store.GrantActive, store.GrantExpired, store.GrantRevoked)
	if err != nil {
		return err
	}
	all, err := parseBoolParam(q, "all")
	if err != nil {
		return err
	}
	sq.Owner = who.ID()
	if all {
		if !s.allowed(ctx, who, "read_audit") {
			return errForbidden("all=true is for security")
		}
		sq.Owner = ""
	}
	grants, next, err := s.cfg.Store.Grants(ctx, sq)
	if err != nil {
		return err
	}
	items := []api.Grant{}
	for _, g := range grants {
		v := s.viewGrant(g)
		if state == "" || v.State == state {
			items = append(items, v)
		}
	}
	writeJSON(w, http.StatusOK, api.List[api.Grant]{Items: items, NextCursor: next})
	return nil
}

func (s *Server) handleGetGrant(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	g, err := s.loadGrant(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !s.canSeeGrant(r.Context(), who, g) {
		return errForbidden("you may not see this grant")
	}
	writeJSON(w, http.StatusOK, s.viewGrant(g))
	return nil
}

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	var body api.Revoke
	reason, err := s.textBody(r, &body, "reason", &body.Reason)
	if err != nil {
		return err
	}
	g, err := s.loadGrant(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	authz, ok := s.mayRevoke(ctx, who, g)
	if !ok {
		s.recordBestEffort(ctx, r, audit.Event{Action: "grant.revoked", Actor: userActor(who), Outcome: "denied",
			Target: grantTarget(g), Reason: "not allowed to revoke"})
		return errForbidden("you may not revoke this grant")
	}
	now := s.now()
	if !g.ActiveAt(now) {
		return errConflict("grant is " + s.viewGrant(g).State + ", not active")
	}
	revoked := audit.Event{Action: "grant.revoked", Actor: userActor(who), Outcome: "success",
		Reason: reason, Target: grantTarget(g), DecisionID: authz.ID, PolicyRevision: authz.Revision}
	me := subjectOf(who)
	err = s.commit(ctx, r, revoked, func(tx *store.Txn) error {
		cur, err := tx.Grant(g.ID)
		if err != nil {
			return err
		}
		if !cur.ActiveAt(now) {
			return errConflict("grant is no longer active")
		}
		cur.State, cur.EndedAt, cur.RevokedBy, cur.RevokeReason = store.GrantRevoked, now, &me, reason
		g = cur
		return tx.PutGrant(&cur)
	})
	if err != nil {
		return err
	}
	s.broadcast(ctx, ControlEvent{Kind: ControlRevoked, GrantID: g.ID, Reason: reason})
	s.notifyGrant(ctx, "grant.revoked", g)
	writeJSON(w, http.StatusOK, s.viewGrant(g))
	return nil
}

// handleExtend asks for more time on an active grant; it goes through policy
// like a new request and answers with the request (201).
func (s *Server) handleExtend(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	var body api.Extend
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	dur, reason, err := s.durationReason(body.Duration, body.Reason)
	if err != nil {
		return err
	}
	g, err := s.loadGrant(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if g.Holder.ID != who.ID() {
		s.recordBestEffort(ctx, r, audit.Event{Action: "grant.extended", Actor: userActor(who), Outcome: "denied",
			Target: grantTarget(g), Reason: "not the grant's holder"})
		return errForbidden("only the grant's holder may extend it")
	}
	if !g.ActiveAt(s.now()) {
		return errConflict("grant is " + s.viewGrant(g).State + ", not active")
	}
	req, grant, err := s.openRequest(ctx, r, who, openArgs{service: g.Service, env: g.Env, duration: dur,
		reason: reason, level: g.Level, scope: g.Scope, extends: &g})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, s.viewRequest(req, grant))
	return nil
}

// handleTimeline is a grant's story: request, decision, approvals, every
// view, its end, in order.
func (s *Server) handleTimeline(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	g, err := s.loadGrant(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !s.canSeeGrant(ctx, who, g) {
		return errForbidden("you may not see this grant")
	}
	seen := map[string]bool{}
	var events []audit.Event
	queries := []audit.Query{{GrantID: g.ID, Limit: 1000}, {RequestID: g.RequestID, Limit: 1000}}
	for i := 0; i < len(queries) && i < 50; i++ {
		page, err := s.cfg.Audit.Search(ctx, queries[i])
		if err != nil {
			return errUnavailable("audit trail unavailable", err)
		}
		for _, ev := range page.Items {
			if ev.Target.RequestID != "" && ev.Target.RequestID != g.RequestID && !seen["q:"+ev.Target.RequestID] {
				// An extension request: its approvals name only the request.
				seen["q:"+ev.Target.RequestID] = true
				queries = append(queries, audit.Query{RequestID: ev.Target.RequestID, Limit: 1000})
			}
			if !seen[ev.ID] {
				seen[ev.ID] = true
				events = append(events, ev)
			}
		}
	}
	sort.Slice(events, func(i, j int) bool { return events[i].Seq < events[j].Seq })
	if err := s.record(ctx, r, audit.Event{Action: "export.timeline", Actor: userActor(who), Outcome: "success",
		Target: grantTarget(g)}); err != nil {
		return err
	}
	var req *api.Request
	if rq, err := s.cfg.Store.Request(ctx, g.RequestID); err == nil {
		v := s.viewRequest(rq, nil)
		req = &v
	}
	writeJSON(w, http.StatusOK, map[string]any{"grant": s.viewGrant(g), "request": req, "events": nonNil(events)})
	return nil
}

func (s *Server) handleListReviews(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	if !s.allowed(ctx, who, "read_audit") {
		return errForbidden("reviews are for security")
	}
	state, err := enumParam(r.URL.Query(), "state", store.ReviewOpen, store.ReviewClosed)
	if err != nil {
		return err
	}
	sq, err := pageQuery(r)
	if err != nil {
		return err
	}
	sq.State = state
	revs, next, err := s.cfg.Store.Reviews(ctx, sq)
	if err != nil {
		return err
	}
	writePage(w, revs, next, viewReview)
	return nil
}

func (s *Server) handleCloseReview(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	var body api.CloseReview
	comment, err := s.textBody(r, &body, "comment", &body.Comment)
	if err != nil {
		return err
	}
	rv, err := s.cfg.Store.Review(ctx, r.PathValue("id"))
	if err != nil {
		return notFound(err, "no such review")
	}
	if !s.allowed(ctx, who, "read_audit") {
		return errForbidden("only security may close a review")
	}
	if rv.Requester.ID == who.ID() {
		return errForbidden("you cannot close the review of your own break-glass access")
	}
	if rv.State != store.ReviewOpen {
		return errConflict("review is already closed")
	}
	closed := audit.Event{Action: "review.closed", Actor: userActor(who), Outcome: "success",
		Reason: comment, Target: audit.Target{ReviewID: rv.ID, GrantID: rv.GrantID, RequestID: rv.RequestID,
			Service: rv.Service, Env: rv.Env}}
	me := subjectOf(who)
	now := s.now()
	err = s.commit(ctx, r, closed, func(tx *store.Txn) error {
		cur, err := tx.Review(rv.ID)
		if err != nil {
			return err
		}
		if cur.State != store.ReviewOpen {
			return errConflict("review is already closed")
		}
		cur.State, cur.ClosedAt, cur.ClosedBy, cur.Comment = store.ReviewClosed, now, &me, comment
		rv = cur
		return tx.PutReview(&cur)
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewReview(rv))
	return nil
}

// expiresIn is the time left on a grant, never negative.
func expiresIn(g store.Grant, now time.Time) time.Duration {
	return max(0, g.ExpiresAt.Sub(now))
}

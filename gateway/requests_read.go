package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

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
	req, err := s.loadRequest(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	if !s.canSeeRequest(ctx, who, req) {
		return errForbidden("you may not see this request")
	}
	writeJSON(w, http.StatusOK, s.viewRequest(req, s.requestGrant(ctx, req)))
	return nil
}

// handleListRequests lists requests visible to the caller. scope=mine (the
// default without state=pending) shows one's own; state=pending without a
// scope shows what the caller may act on; scope=all is for security.
func (s *Server) handleListRequests(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	q := r.URL.Query()
	state, err := enumParam(q, "state", store.StatePending, store.StateApproved, store.StateDenied, store.StateCancelled, store.StateLapsed)
	if err != nil {
		return err
	}
	limit, err := limitParam(q)
	if err != nil {
		return err
	}
	scope, err := enumParam(q, "scope", "mine", "approvable", "all")
	if err != nil {
		return err
	}
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
	items := []api.Request{}
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
	writeJSON(w, http.StatusOK, api.List[api.Request]{Items: items, NextCursor: cursor})
	return nil
}

func parseLimit(v string, def, maxN int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxN {
		return 0, errBadRequest(fmt.Sprintf("limit %q is not an integer from 1 to %d", truncate(v, 40), maxN))
	}
	return n, nil
}

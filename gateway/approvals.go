package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := s.checkVerdict(r, who, "approve")
	if err != nil {
		return err
	}
	have, need := len(v.req.Approvers()), v.req.Decision.ApprovalsRequired
	ev := v.event(who, "request.approved")
	ev.Details["approvals"] = have
	ev.Details["approvals_required"] = need
	if have < need {
		ev.Action = "request.approval_added"
		return s.applyVerdict(w, r, who, v, nil, ev)
	}
	v.req.State = store.StateApproved
	v.req.PendingUntil = time.Time{}
	grant, issued := s.issue(&v.req, v.now)
	return s.applyVerdict(w, r, who, v, grant, ev, issued)
}

func (s *Server) handleDeny(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	v, err := s.checkVerdict(r, who, "deny")
	if err != nil {
		return err
	}
	v.req.State = store.StateDenied
	v.req.ClosedBy, v.req.ClosedComment = &v.me, v.comment
	ev := v.event(who, "request.denied")
	ev.Outcome = "denied"
	return s.applyVerdict(w, r, who, v, nil, ev)
}

// approverVerdict is one approver's approval or denial, checked and added to req.
type approverVerdict struct {
	past    string // "approved" or "denied", for audit actions
	req     store.Request
	me      store.Subject
	comment string
	authz   policy.ActionDecision // policy's answer to "may me decide?"
	now     time.Time
}

// checkVerdict reads an approve or deny and checks it: not the caller's own
// request, allowed by policy (refusals are audited), still pending and not
// past its deadline, not decided by the caller already. It returns the
// verdict with the caller's approval added to the request.
func (s *Server) checkVerdict(r *http.Request, who auth.Identity, word string) (approverVerdict, error) {
	ctx := r.Context()
	v := approverVerdict{past: "approved", me: subjectOf(who)}
	if word == "deny" {
		v.past = "denied"
	}
	var body api.Verdict
	if err := decodeOptionalBody(r, &body); err != nil {
		return v, err
	}
	comment, err := s.cleanText("comment", body.Comment, word == "deny")
	if err != nil {
		return v, err
	}
	v.comment = comment
	req, err := s.loadRequest(ctx, r.PathValue("id"))
	if err != nil {
		return v, err
	}
	if req.Requester.ID == v.me.ID {
		s.recordRefusal(ctx, r, who, "request."+v.past, req, "self-approval refused")
		return v, errForbidden("you cannot " + word + " your own request")
	}
	authz, aerr := s.cfg.Policy.Authorize(ctx, policy.ActionInput{Action: word, Actor: policySubject(v.me),
		Requester: policySubject(req.Requester), Service: req.Service, Env: req.Env, BreakGlass: req.BreakGlass,
		ApproverGroups: req.Decision.ApproverGroups})
	if aerr != nil || !authz.Allow {
		if aerr != nil {
			s.metrics.policyErrors.Inc()
		}
		s.recordRefusal(ctx, r, who, "request."+v.past, req, strings.Join(authz.Reasons, "; "))
		return v, errForbidden("you may not " + word + " this request")
	}
	if req.State != store.StatePending {
		return v, errConflict("request is " + req.State + ", not pending")
	}
	// Past its deadline a request is lapsed, even before the sweep says so.
	if !req.PendingUntil.IsZero() && !s.now().Before(req.PendingUntil) {
		return v, errConflict("request lapsed: nobody decided before " + req.PendingUntil.UTC().Format(time.RFC3339))
	}
	for _, a := range req.Approvals {
		if a.Approver.ID == v.me.ID {
			return v, errConflict("you already decided on this request")
		}
	}
	v.authz, v.now = authz, s.now()
	req.Approvals = append(req.Approvals, store.Approval{Approver: v.me, Verdict: word, Comment: comment, Time: v.now})
	req.UpdatedAt = v.now
	v.req = req
	return v, nil
}

// event is the audit event of the verdict, with the given action.
func (v approverVerdict) event(who auth.Identity, action string) audit.Event {
	return audit.Event{Action: action, Actor: userActor(who), Outcome: "success", Reason: v.comment, DecisionID: v.authz.ID,
		PolicyRevision: v.authz.Revision, Target: audit.Target{RequestID: v.req.ID, Service: v.req.Service, Env: v.req.Env},
		Details: map[string]any{"request_decision_id": v.req.Decision.ID}}
}

// applyVerdict audits the verdict's events, then stores the request (and
// the grant an approval issued) unless another decision got there first,
// and answers with the request.
func (s *Server) applyVerdict(w http.ResponseWriter, r *http.Request, who auth.Identity, v approverVerdict, grant *store.Grant, events ...audit.Event) error {
	ctx := r.Context()
	req := v.req
	if err := s.recordAll(ctx, r, events...); err != nil {
		return err
	}
	err := s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		cur, err := tx.Request(req.ID)
		if err != nil {
			return err
		}
		if cur.State != store.StatePending || len(cur.Approvals) != len(req.Approvals)-1 {
			return errConflict("request changed while you were deciding; reload it")
		}
		if err := putGrant(tx, grant, req, v.now); err != nil {
			return err
		}
		return tx.PutRequest(&req)
	})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			s.recordBestEffort(ctx, r, audit.Event{Action: "request." + v.past, Actor: userActor(who),
				Outcome: "error", Reason: "not applied: " + ae.Message, Target: events[0].Target})
		}
		return err
	}
	if grant != nil && req.Extends != "" {
		s.broadcast(ctx, ControlEvent{Kind: ControlExtended, GrantID: grant.ID, ExpiresAt: grant.ExpiresAt})
	}
	s.notify(ctx, req, grant)
	if grant == nil {
		grant = s.requestGrant(ctx, req)
	}
	writeJSON(w, http.StatusOK, s.viewRequest(req, grant))
	return nil
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	ctx := r.Context()
	req, err := s.loadRequest(ctx, r.PathValue("id"))
	if err != nil {
		return err
	}
	me := subjectOf(who)
	if req.Requester.ID != me.ID {
		s.recordRefusal(ctx, r, who, "request.cancelled", req, "not the requester")
		return errForbidden("only the requester may cancel a request")
	}
	if req.State != store.StatePending {
		return errConflict("request is " + req.State + ", not pending")
	}
	cancelled := audit.Event{Action: "request.cancelled", Actor: userActor(who), Outcome: "success",
		Target: audit.Target{RequestID: req.ID, Service: req.Service, Env: req.Env}}
	now := s.now()
	err = s.commit(ctx, r, cancelled, func(tx *store.Txn) error {
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

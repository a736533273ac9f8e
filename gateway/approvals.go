package gateway

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// verdictBody is the body of approve and deny.
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
	// Past its deadline a request is lapsed, even before the sweep says so.
	if !req.PendingUntil.IsZero() && !s.now().Before(req.PendingUntil) {
		return errConflict("request lapsed: nobody decided before " + req.PendingUntil.UTC().Format(time.RFC3339))
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
	cancelled := audit.Event{Action: "request.cancelled", Actor: userActor(who), Outcome: "success",
		Target: audit.Target{RequestID: req.ID, Service: req.Service, Env: req.Env}}
	if err := s.record(ctx, r, cancelled); err != nil {
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
		s.recordNotApplied(ctx, r, cancelled, err)
		return err
	}
	s.notify(ctx, req, nil)
	writeJSON(w, http.StatusOK, s.viewRequest(req, nil))
	return nil
}

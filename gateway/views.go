package gateway

import (
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// The conversions from the store's records to the API's JSON shapes (package
// api).

func subjectOf(who auth.Identity) store.Subject {
	return store.Subject{ID: who.ID(), Issuer: who.Issuer, Subject: who.Subject, Email: who.Email,
		Name: who.Display(), Groups: who.Groups}
}

func policySubject(s store.Subject) policy.Subject {
	return policy.Subject{ID: s.ID, Subject: s.Subject, Email: s.Email, Name: s.Name, Groups: s.Groups}
}

func viewSubject(s store.Subject) api.Subject {
	return api.Subject{ID: s.ID, Email: s.Email, Name: s.Name, Groups: s.Groups}
}

func viewSubjectPtr(s *store.Subject) *api.Subject {
	if s == nil {
		return nil
	}
	v := viewSubject(*s)
	return &v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func durString(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	return d.String()
}

func storeDecision(d policy.Decision) store.Decision {
	return store.Decision{ID: d.ID, Revision: d.Revision, Allow: d.Allow, Reasons: d.Reasons,
		ApprovalsRequired: d.ApprovalsRequired, ApproverGroups: d.ApproverGroups, MaxDuration: d.MaxDuration,
		MaxLookback: d.MaxLookback, PendingTimeout: d.PendingTimeout, BreakGlassAllowed: d.BreakGlassAllowed,
		ReasonPattern: d.ReasonPattern}
}

func viewDecision(d store.Decision) api.Decision {
	v := api.Decision{ID: d.ID, PolicyRevision: d.Revision, Allow: d.Allow, Reasons: nonNil(d.Reasons),
		AutoApprove: d.Allow && d.ApprovalsRequired == 0, ApprovalsRequired: d.ApprovalsRequired,
		ApproverGroups: nonNil(d.ApproverGroups), MaxDuration: durString(d.MaxDuration),
		MaxLookback: durString(d.MaxLookback), BreakGlassAllowed: d.BreakGlassAllowed, ReasonPattern: d.ReasonPattern}
	if d.PendingTimeout > 0 {
		v.PendingTimeout = d.PendingTimeout.String()
	}
	return v
}

func (s *Server) viewRequest(r store.Request, g *store.Grant) api.Request {
	v := api.Request{ID: r.ID, State: r.State, Service: r.Service, Env: r.Env, Duration: durString(r.Duration),
		DurationSeconds: int64(r.Duration / time.Second), Reason: r.Reason, BreakGlass: r.BreakGlass, Level: r.Level, Scope: r.Scope, Extends: r.Extends,
		Requester: viewSubject(r.Requester), Decision: viewDecision(r.Decision), Approvals: []api.Approval{},
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ClosedBy: viewSubjectPtr(r.ClosedBy), ClosedComment: r.ClosedComment,
		GrantID: r.GrantID}
	for _, a := range r.Approvals {
		v.Approvals = append(v.Approvals, api.Approval{Approver: viewSubject(a.Approver), Verdict: a.Verdict, Comment: a.Comment, Time: a.Time})
	}
	if r.State == store.StatePending {
		v.PendingUntil = timePtr(r.PendingUntil)
		v.ApprovalsNeeded = max(0, r.Decision.ApprovalsRequired-len(r.Approvers()))
	}
	if g != nil {
		gv := s.viewGrant(*g)
		v.Grant = &gv
	}
	return v
}

func (s *Server) viewGrant(g store.Grant) api.Grant {
	state := g.State
	if state == store.GrantActive && !s.now().Before(g.ExpiresAt) {
		state = store.GrantExpired
	}
	return api.Grant{ID: g.ID, RequestID: g.RequestID, State: state, Service: g.Service, Env: g.Env,
		Holder: viewSubject(g.Holder), BreakGlass: g.BreakGlass, Level: g.Level, Scope: g.Scope,
		IssuedAt: g.IssuedAt, ExpiresAt: g.ExpiresAt,
		EndedAt: timePtr(g.EndedAt), RevokedBy: viewSubjectPtr(g.RevokedBy), RevokeReason: g.RevokeReason,
		MaxLookback: durString(g.MaxLookback), TailPath: api.TailPath(g.ID)}
}

func viewReview(r store.Review) api.Review {
	return api.Review{ID: r.ID, State: r.State, GrantID: r.GrantID, RequestID: r.RequestID, Requester: viewSubject(r.Requester),
		Service: r.Service, Env: r.Env, Reason: r.Reason, CreatedAt: r.CreatedAt, ClosedAt: timePtr(r.ClosedAt),
		ClosedBy: viewSubjectPtr(r.ClosedBy), Comment: r.Comment}
}

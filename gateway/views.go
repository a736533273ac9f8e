package gateway

import (
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// The types in this file are the public API's JSON shapes. Add fields
// freely; never rename or remove one.

type subjectView struct {
	ID     string   `json:"id"`
	Email  string   `json:"email,omitempty"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

type decisionView struct {
	ID                string   `json:"id"`
	PolicyRevision    string   `json:"policy_revision"`
	Allow             bool     `json:"allow"`
	AutoApprove       bool     `json:"auto_approve"`
	Reasons           []string `json:"reasons"`
	ApprovalsRequired int      `json:"approvals_required"`
	ApproverGroups    []string `json:"approver_groups"`
	MaxDuration       string   `json:"max_duration"`
	MaxLookback       string   `json:"max_lookback"`
	PendingTimeout    string   `json:"pending_timeout,omitempty"`
	BreakGlassAllowed bool     `json:"break_glass_allowed"`
	ReasonPattern     string   `json:"reason_pattern,omitempty"`
}

type approvalView struct {
	Approver subjectView `json:"approver"`
	Verdict  string      `json:"verdict"`
	Comment  string      `json:"comment,omitempty"`
	Time     time.Time   `json:"time"`
}

type requestView struct {
	ID              string         `json:"id"`
	State           string         `json:"state"`
	Service         string         `json:"service"`
	Env             string         `json:"env"`
	Duration        string         `json:"duration"`
	DurationSeconds int64          `json:"duration_seconds"`
	Reason          string         `json:"reason"`
	BreakGlass      bool           `json:"break_glass"`
	Extends         string         `json:"extends,omitempty"`
	AlertID         string         `json:"alert_id,omitempty"`
	Requester       subjectView    `json:"requester"`
	Decision        decisionView   `json:"decision"`
	Approvals       []approvalView `json:"approvals"`
	ApprovalsNeeded int            `json:"approvals_needed"`
	Grant           *grantView     `json:"grant"`
	GrantID         string         `json:"grant_id,omitempty"`
	CreatedAt       time.Time      `json:"created_at"`
	UpdatedAt       time.Time      `json:"updated_at"`
	PendingUntil    *time.Time     `json:"pending_until,omitempty"`
	ClosedBy        *subjectView   `json:"closed_by,omitempty"`
	ClosedComment   string         `json:"closed_comment,omitempty"`
}

type grantView struct {
	ID           string       `json:"id"`
	RequestID    string       `json:"request_id"`
	State        string       `json:"state"`
	Service      string       `json:"service"`
	Env          string       `json:"env"`
	Holder       subjectView  `json:"holder"`
	BreakGlass   bool         `json:"break_glass"`
	IssuedAt     time.Time    `json:"issued_at"`
	ExpiresAt    time.Time    `json:"expires_at"`
	EndedAt      *time.Time   `json:"ended_at,omitempty"`
	RevokedBy    *subjectView `json:"revoked_by,omitempty"`
	RevokeReason string       `json:"revoke_reason,omitempty"`
	MaxLookback  string       `json:"max_lookback"`
	TailPath     string       `json:"tail_path"`
}

type reviewView struct {
	ID        string       `json:"id"`
	State     string       `json:"state"`
	GrantID   string       `json:"grant_id"`
	RequestID string       `json:"request_id"`
	Requester subjectView  `json:"requester"`
	Service   string       `json:"service"`
	Env       string       `json:"env"`
	Reason    string       `json:"reason"`
	CreatedAt time.Time    `json:"created_at"`
	ClosedAt  *time.Time   `json:"closed_at,omitempty"`
	ClosedBy  *subjectView `json:"closed_by,omitempty"`
	Comment   string       `json:"comment,omitempty"`
}

type listView[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func subjectOf(who auth.Identity) store.Subject {
	return store.Subject{ID: who.ID(), Issuer: who.Issuer, Subject: who.Subject, Email: who.Email,
		Name: who.Display(), Groups: who.Groups}
}

func policySubject(s store.Subject) policy.Subject {
	return policy.Subject{ID: s.ID, Subject: s.Subject, Email: s.Email, Name: s.Name, Groups: s.Groups}
}

func viewSubject(s store.Subject) subjectView {
	return subjectView{ID: s.ID, Email: s.Email, Name: s.Name, Groups: s.Groups}
}

func viewSubjectPtr(s *store.Subject) *subjectView {
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

func viewDecision(d store.Decision) decisionView {
	v := decisionView{ID: d.ID, PolicyRevision: d.Revision, Allow: d.Allow, Reasons: nonNil(d.Reasons),
		AutoApprove: d.Allow && d.ApprovalsRequired == 0, ApprovalsRequired: d.ApprovalsRequired,
		ApproverGroups: nonNil(d.ApproverGroups), MaxDuration: durString(d.MaxDuration),
		MaxLookback: durString(d.MaxLookback), BreakGlassAllowed: d.BreakGlassAllowed, ReasonPattern: d.ReasonPattern}
	if d.PendingTimeout > 0 {
		v.PendingTimeout = d.PendingTimeout.String()
	}
	return v
}

func (s *Server) viewRequest(r store.Request, g *store.Grant) requestView {
	v := requestView{ID: r.ID, State: r.State, Service: r.Service, Env: r.Env, Duration: durString(r.Duration),
		DurationSeconds: int64(r.Duration / time.Second), Reason: r.Reason, BreakGlass: r.BreakGlass, Extends: r.Extends,
		Requester: viewSubject(r.Requester), Decision: viewDecision(r.Decision), Approvals: []approvalView{},
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, ClosedBy: viewSubjectPtr(r.ClosedBy), ClosedComment: r.ClosedComment,
		GrantID: r.GrantID, AlertID: r.AlertID}
	for _, a := range r.Approvals {
		v.Approvals = append(v.Approvals, approvalView{Approver: viewSubject(a.Approver), Verdict: a.Verdict, Comment: a.Comment, Time: a.Time})
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

func (s *Server) viewGrant(g store.Grant) grantView {
	state := g.State
	if state == store.GrantActive && !s.now().Before(g.ExpiresAt) {
		state = store.GrantExpired
	}
	return grantView{ID: g.ID, RequestID: g.RequestID, State: state, Service: g.Service, Env: g.Env,
		Holder: viewSubject(g.Holder), BreakGlass: g.BreakGlass, IssuedAt: g.IssuedAt, ExpiresAt: g.ExpiresAt,
		EndedAt: timePtr(g.EndedAt), RevokedBy: viewSubjectPtr(g.RevokedBy), RevokeReason: g.RevokeReason,
		MaxLookback: durString(g.MaxLookback), TailPath: "/api/v1/grants/" + g.ID + "/tail"}
}

func viewReview(r store.Review) reviewView {
	return reviewView{ID: r.ID, State: r.State, GrantID: r.GrantID, RequestID: r.RequestID, Requester: viewSubject(r.Requester),
		Service: r.Service, Env: r.Env, Reason: r.Reason, CreatedAt: r.CreatedAt, ClosedAt: timePtr(r.ClosedAt),
		ClosedBy: viewSubjectPtr(r.ClosedBy), Comment: r.Comment}
}

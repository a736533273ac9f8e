package api

import "time"

// Subject is a person as the API shows them.
type Subject struct {
	ID     string   `json:"id"`
	Email  string   `json:"email,omitempty"`
	Name   string   `json:"name,omitempty"`
	Groups []string `json:"groups,omitempty"`
}

// Decision is the policy's answer to a request, as recorded on it.
type Decision struct {
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

// Approval is one approver's verdict on a request.
type Approval struct {
	Approver Subject   `json:"approver"`
	Verdict  string    `json:"verdict"`
	Comment  string    `json:"comment,omitempty"`
	Time     time.Time `json:"time"`
}

// Request is an access request (GET /api/v1/requests/{id}).
type Request struct {
	ID              string `json:"id"`
	State           string `json:"state"`
	Service         string `json:"service"`
	Env             string `json:"env"`
	Duration        string `json:"duration"`
	DurationSeconds int64  `json:"duration_seconds"`
	Reason          string `json:"reason"`
	BreakGlass      bool   `json:"break_glass"`
	// Level and Scope: see the request body's "level" and "scope" (debug on demand).
	Level           string            `json:"level,omitempty"`
	Scope           map[string]string `json:"scope,omitempty"`
	Extends         string            `json:"extends,omitempty"`
	Requester       Subject           `json:"requester"`
	Decision        Decision          `json:"decision"`
	Approvals       []Approval        `json:"approvals"`
	ApprovalsNeeded int               `json:"approvals_needed"`
	Grant           *Grant            `json:"grant"`
	GrantID         string            `json:"grant_id,omitempty"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
	PendingUntil    *time.Time        `json:"pending_until,omitempty"`
	ClosedBy        *Subject          `json:"closed_by,omitempty"`
	ClosedComment   string            `json:"closed_comment,omitempty"`
}

// Stream is "service/env".
func (r Request) Stream() string { return r.Service + "/" + r.Env }

// Grant is time-boxed access to one stream (GET /api/v1/grants/{id}).
type Grant struct {
	ID         string  `json:"id"`
	RequestID  string  `json:"request_id"`
	State      string  `json:"state"`
	Service    string  `json:"service"`
	Env        string  `json:"env"`
	Holder     Subject `json:"holder"`
	BreakGlass bool    `json:"break_glass"`
	// Level is the log level the stream's services emit for Scope while a
	// view of this grant is open; empty when it raises none.
	Level        string            `json:"level,omitempty"`
	Scope        map[string]string `json:"scope,omitempty"`
	IssuedAt     time.Time         `json:"issued_at"`
	ExpiresAt    time.Time         `json:"expires_at"`
	EndedAt      *time.Time        `json:"ended_at,omitempty"`
	RevokedBy    *Subject          `json:"revoked_by,omitempty"`
	RevokeReason string            `json:"revoke_reason,omitempty"`
	MaxLookback  string            `json:"max_lookback"`
	TailPath     string            `json:"tail_path"`
}

// Stream is "service/env".
func (g Grant) Stream() string { return g.Service + "/" + g.Env }

// Review is security's after-the-fact look at a break-glass grant.
type Review struct {
	ID        string     `json:"id"`
	State     string     `json:"state"`
	GrantID   string     `json:"grant_id"`
	RequestID string     `json:"request_id"`
	Requester Subject    `json:"requester"`
	Service   string     `json:"service"`
	Env       string     `json:"env"`
	Reason    string     `json:"reason"`
	CreatedAt time.Time  `json:"created_at"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	ClosedBy  *Subject   `json:"closed_by,omitempty"`
	Comment   string     `json:"comment,omitempty"`
}

// List is one page of a list endpoint; pass NextCursor as ?cursor= for the
// next (empty: the last page).
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// Stream is one stream the caller may ask for and what policy would require
// (GET /api/v1/streams).
type Stream struct {
	Service           string   `json:"service"`
	Env               string   `json:"env"`
	AutoApprove       bool     `json:"auto_approve"`
	ApprovalsRequired int      `json:"approvals_required"`
	ApproverGroups    []string `json:"approver_groups"`
	MaxDuration       string   `json:"max_duration"`
	MaxLookback       string   `json:"max_lookback"`
	BreakGlassAllowed bool     `json:"break_glass_allowed"`
	ReasonPattern     string   `json:"reason_pattern,omitempty"`
	PolicyRevision    string   `json:"policy_revision"`
}

// StreamRef names a stream.
type StreamRef struct {
	Service string `json:"service"`
	Env     string `json:"env"`
}

// Source is a log source with an ingest token (GET /api/v1/sources).
type Source struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Streams   []StreamRef `json:"streams"`
	CreatedAt time.Time   `json:"created_at"`
	CreatedBy string      `json:"created_by,omitempty"`
	RevokedAt *time.Time  `json:"revoked_at,omitempty"`
	// Token is returned once, at creation.
	Token string `json:"token,omitempty"`
}

// Session is a browser session (GET /api/v1/sessions).
type Session struct {
	ID         string    `json:"id"`
	UserID     string    `json:"user_id"`
	Display    string    `json:"display"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
	UserAgent  string    `json:"user_agent,omitempty"`
	Current    bool      `json:"current"`
}

// Me is who the caller is (GET /api/v1/me).
type Me struct {
	ID       string   `json:"id"`
	Issuer   string   `json:"issuer"`
	Subject  string   `json:"subject"`
	Email    string   `json:"email"`
	Name     string   `json:"name"`
	Username string   `json:"username"`
	Display  string   `json:"display"`
	Groups   []string `json:"groups"`
	// Via is how the caller signed in: "bearer" or "session".
	Via string `json:"via"`
	// CSRFToken is set for browser sessions only.
	CSRFToken string `json:"csrf_token,omitempty"`
}

// AuthConfig is how a client signs in (GET /api/v1/auth/config).
type AuthConfig struct {
	Issuer                      string   `json:"issuer"`
	ClientID                    string   `json:"client_id"`
	Scopes                      []string `json:"scopes"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint,omitempty"`
}

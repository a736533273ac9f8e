package store

// JSON tags here describe the stored form; the gateway renders its own API
// views, so these may change with a schema migration.

import (
	"errors"
	"slices"
	"time"
)

// Request states.
const (
	StatePending   = "pending"
	StateApproved  = "approved"
	StateDenied    = "denied"
	StateCancelled = "cancelled"
	StateLapsed    = "lapsed"
)

// Grant states.
const (
	GrantActive  = "active"
	GrantExpired = "expired"
	GrantRevoked = "revoked"
)

// Review states.
const (
	ReviewOpen   = "open"
	ReviewClosed = "closed"
)

// Errors returned by every Store implementation.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a write that lost a race or an id that exists.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable reports that the backing store cannot be reached.
	ErrUnavailable = errors.New("store unavailable")
)

// Subject identifies a person.
type Subject struct {
	// ID is the stable identity: issuer + "|" + subject.
	ID      string   `json:"id"`
	Issuer  string   `json:"issuer,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// Decision is the policy's answer recorded with a request.
type Decision struct {
	ID                string        `json:"id"`
	Revision          string        `json:"policy_revision"`
	Allow             bool          `json:"allow"`
	Reasons           []string      `json:"reasons,omitempty"`
	ApprovalsRequired int           `json:"approvals_required"`
	ApproverGroups    []string      `json:"approver_groups,omitempty"`
	MaxDuration       time.Duration `json:"max_duration_ns"`
	MaxLookback       time.Duration `json:"max_lookback_ns"`
	PendingTimeout    time.Duration `json:"pending_timeout_ns"`
	BreakGlassAllowed bool          `json:"break_glass_allowed"`
	ReasonPattern     string        `json:"reason_pattern,omitempty"`
}

// Approval is one approver's verdict on a request.
type Approval struct {
	Approver Subject   `json:"approver"`
	Verdict  string    `json:"verdict"` // "approve" or "deny"
	Comment  string    `json:"comment,omitempty"`
	Time     time.Time `json:"time"`
}

// Request is an engineer's ask for time-boxed access to one stream.
type Request struct {
	ID         string        `json:"id"`
	State      string        `json:"state"`
	Requester  Subject       `json:"requester"`
	Service    string        `json:"service"`
	Env        string        `json:"env"`
	Duration   time.Duration `json:"duration_ns"`
	Reason     string        `json:"reason"`
	BreakGlass bool          `json:"break_glass"`
	// Level is the log level the requester wants the stream's services to
	// emit while they watch ("debug"); empty keeps the services' own level.
	Level string `json:"level,omitempty"`
	// Scope narrows a raised level to records whose attributes all match
	// (e.g. tenant=acme); nil raises it for the whole service.
	Scope map[string]string `json:"scope,omitempty"`
	// Extends is the grant this request would extend; empty for new access.
	Extends   string     `json:"extends,omitempty"`
	Decision  Decision   `json:"decision"`
	Approvals []Approval `json:"approvals"`
	GrantID   string     `json:"grant_id,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	// PendingUntil is when a pending request lapses; zero when not pending.
	PendingUntil time.Time `json:"pending_until,omitzero"`
	// ClosedBy and ClosedComment say who ended the request and why
	// (denial, cancellation).
	ClosedBy      *Subject `json:"closed_by,omitempty"`
	ClosedComment string   `json:"closed_comment,omitempty"`
}

// Approvers returns the distinct people who approved the request.
func (r *Request) Approvers() []Subject {
	var out []Subject
	for _, a := range r.Approvals {
		if a.Verdict != "approve" {
			continue
		}
		if !slices.ContainsFunc(out, func(s Subject) bool { return s.ID == a.Approver.ID }) {
			out = append(out, a.Approver)
		}
	}
	return out
}

// Grant is issued access to one stream until ExpiresAt.
type Grant struct {
	ID         string  `json:"id"`
	RequestID  string  `json:"request_id"`
	State      string  `json:"state"`
	Holder     Subject `json:"holder"`
	Service    string  `json:"service"`
	Env        string  `json:"env"`
	BreakGlass bool    `json:"break_glass"`
	// Level and Scope are copied from the request: while a view of this
	// grant is open, the stream's services emit Level for records in Scope.
	Level       string            `json:"level,omitempty"`
	Scope       map[string]string `json:"scope,omitempty"`
	IssuedAt    time.Time         `json:"issued_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	MaxLookback time.Duration     `json:"max_lookback_ns"`
	// ApproverGroups is copied from the decision so revocation rights can be
	// checked without the request.
	ApproverGroups []string  `json:"approver_groups,omitempty"`
	EndedAt        time.Time `json:"ended_at,omitzero"`
	RevokedBy      *Subject  `json:"revoked_by,omitempty"`
	RevokeReason   string    `json:"revoke_reason,omitempty"`
	// ExpiryWarned records that the "expiring soon" notification went out.
	ExpiryWarned bool `json:"expiry_warned,omitempty"`
}

// ActiveAt reports whether the grant permits viewing at t.
func (g *Grant) ActiveAt(t time.Time) bool {
	return g.State == GrantActive && t.Before(g.ExpiresAt)
}

// Review is the post-incident review a break-glass grant opens.
type Review struct {
	ID        string    `json:"id"`
	State     string    `json:"state"`
	GrantID   string    `json:"grant_id"`
	RequestID string    `json:"request_id"`
	Requester Subject   `json:"requester"`
	Service   string    `json:"service"`
	Env       string    `json:"env"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
	ClosedAt  time.Time `json:"closed_at,omitzero"`
	ClosedBy  *Subject  `json:"closed_by,omitempty"`
	Comment   string    `json:"comment,omitempty"`
}

// StreamRef names a stream a source may write.
type StreamRef struct {
	Service string `json:"service"`
	Env     string `json:"env"`
}

// Source is a log shipper's identity: a token bound to streams.
type Source struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// TokenHash is the SHA-256 of the token, hex; the token itself is never kept.
	TokenHash string      `json:"token_hash"`
	Streams   []StreamRef `json:"streams"`
	CreatedAt time.Time   `json:"created_at"`
	CreatedBy string      `json:"created_by,omitempty"`
	RevokedAt time.Time   `json:"revoked_at,omitzero"`
}

// Allows reports whether the source may write the stream.
func (s *Source) Allows(service, env string) bool {
	if !s.RevokedAt.IsZero() {
		return false
	}
	for _, st := range s.Streams {
		if (st.Service == service || st.Service == "*") && (st.Env == env || st.Env == "*") {
			return true
		}
	}
	return false
}

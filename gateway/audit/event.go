package audit

import (
	"errors"
	"time"
)

// SchemaVersion is the version of the event record format written by Append.
const SchemaVersion = 1

var (
	// ErrNotFound means no event has the requested id.
	ErrNotFound = errors.New("audit: not found")
	// ErrUnavailable means the store could not durably commit (or read); callers
	// must fail closed (HTTP 503) and not perform the audited action.
	ErrUnavailable = errors.New("audit: store unavailable")
	// ErrTampered means verification found at least one integrity problem.
	ErrTampered = errors.New("audit: trail tampered")
	// ErrInvalid means an event or query was rejected before any write.
	ErrInvalid = errors.New("audit: invalid")
)

// Actor kinds.
const (
	ActorUser   = "user"
	ActorSource = "source"
	ActorSystem = "system"
)

// Outcomes.
const (
	OutcomeSuccess     = "success"
	OutcomeDenied      = "denied"
	OutcomeFailure     = "failure"
	OutcomeError       = "error"
	OutcomeInterrupted = "interrupted"
)

// Actor is who caused an event.
type Actor struct {
	Kind    string   `json:"kind"` // "user", "source" or "system"
	Issuer  string   `json:"issuer,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	ID      string   `json:"id,omitempty"` // source id for sources
}

// Target is what an event is about.
type Target struct {
	RequestID string `json:"request_id,omitempty"`
	GrantID   string `json:"grant_id,omitempty"`
	ReviewID  string `json:"review_id,omitempty"`
	SourceID  string `json:"source_id,omitempty"`
	Service   string `json:"service,omitempty"`
	Env       string `json:"env,omitempty"`
}

// Event is one audit record. ID, Seq, Schema, PrevHash and Hash are assigned
// by Append; Time is assigned when zero.
type Event struct {
	ID             string         `json:"id"`
	Seq            int64          `json:"seq"`
	Time           time.Time      `json:"time"`
	Action         string         `json:"action"`
	Actor          Actor          `json:"actor"`
	SourceAddr     string         `json:"source_addr,omitempty"`
	UserAgent      string         `json:"user_agent,omitempty"`
	RequestID      string         `json:"request_id,omitempty"`
	Target         Target         `json:"target"` // always present in API answers ({} when none); stored records omit it when empty
	Outcome        string         `json:"outcome"`
	Reason         string         `json:"reason,omitempty"`
	DecisionID     string         `json:"decision_id,omitempty"`
	PolicyRevision string         `json:"policy_revision,omitempty"`
	Details        map[string]any `json:"details,omitempty"`
	PrevHash       string         `json:"prev_hash"` // hex SHA-256
	Hash           string         `json:"hash"`      // hex SHA-256
	Schema         int            `json:"schema"`
}

// recordTail is the part of the canonical record that does not depend on the
// chain position. The writer prefixes it with seq and prev_hash, so the
// record always begins `{"seq":N,"prev_hash":"<64 hex>",` which lets Verify
// read both without a JSON decoder.
type recordTail struct {
	ID             string         `json:"id"`
	Schema         int            `json:"schema"`
	Time           time.Time      `json:"time"`
	Action         string         `json:"action"`
	Actor          Actor          `json:"actor"`
	SourceAddr     string         `json:"source_addr,omitempty"`
	UserAgent      string         `json:"user_agent,omitempty"`
	RequestID      string         `json:"request_id,omitempty"`
	Target         Target         `json:"target,omitzero"`
	Outcome        string         `json:"outcome"`
	Reason         string         `json:"reason,omitempty"`
	DecisionID     string         `json:"decision_id,omitempty"`
	PolicyRevision string         `json:"policy_revision,omitempty"`
	Details        map[string]any `json:"details,omitempty"`
}

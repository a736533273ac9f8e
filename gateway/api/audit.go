package api

import "time"

// AuditEvent is one audit record as GET /api/v1/audit returns it.
type AuditEvent struct {
	ID             string         `json:"id"`
	Seq            int64          `json:"seq"`
	Time           time.Time      `json:"time"`
	Action         string         `json:"action"`
	Actor          AuditActor     `json:"actor"`
	SourceAddr     string         `json:"source_addr,omitempty"`
	UserAgent      string         `json:"user_agent,omitempty"`
	RequestID      string         `json:"request_id,omitempty"`
	Target         AuditTarget    `json:"target"`
	Outcome        string         `json:"outcome"`
	Reason         string         `json:"reason,omitempty"`
	DecisionID     string         `json:"decision_id,omitempty"`
	PolicyRevision string         `json:"policy_revision,omitempty"`
	Details        map[string]any `json:"details,omitempty"`
	PrevHash       string         `json:"prev_hash"`
	Hash           string         `json:"hash"`
	Schema         int            `json:"schema"`
}

// AuditActor is who did it.
type AuditActor struct {
	Kind    string   `json:"kind"` // "user", "source" or "system"
	Issuer  string   `json:"issuer,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	ID      string   `json:"id,omitempty"` // source id for sources
}

// AuditTarget is what an event is about.
type AuditTarget struct {
	RequestID string `json:"request_id,omitempty"`
	GrantID   string `json:"grant_id,omitempty"`
	ReviewID  string `json:"review_id,omitempty"`
	SourceID  string `json:"source_id,omitempty"`
	Service   string `json:"service,omitempty"`
	Env       string `json:"env,omitempty"`
}

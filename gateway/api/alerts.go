package api

import (
	"encoding/json"
	"time"
)

// Alert is one alert as GET /api/v1/alerts and /api/v1/alerts/{id} send it.
type Alert struct {
	ID          string            `json:"id"`
	Rule        string            `json:"rule"`
	Kind        string            `json:"kind"`
	State       string            `json:"state"` // pending, firing or resolved
	Service     string            `json:"service"`
	Env         string            `json:"env"`
	Severity    string            `json:"severity"`
	Group       map[string]string `json:"group,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Count       int64             `json:"count"`
	Threshold   int64             `json:"threshold"`
	Window      string            `json:"window"`
	Absent      bool              `json:"absent,omitempty"`
	// Sample is the last matching line, only where policy allows it.
	Sample       string     `json:"sample,omitempty"`
	PendingSince *time.Time `json:"pending_since"`
	StartedAt    *time.Time `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	// Link opens the alert in the web UI.
	Link string `json:"link"`
}

// AlertRules is GET /api/v1/alert-rules: the rules in force (as parsed,
// kept raw here), their digest, and the file's text when it is editable.
type AlertRules struct {
	Digest   string            `json:"digest"`
	Rules    []json.RawMessage `json:"rules"`
	Editable bool              `json:"editable"`
	Source   string            `json:"source,omitempty"`
}

// AlertRulesSaved is the answer to PUT /api/v1/alert-rules: the new digest
// and the names of the rules now in force.
type AlertRulesSaved struct {
	Digest string   `json:"digest"`
	Rules  []string `json:"rules"`
}

package alert

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// Alert states.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is one episode of a rule's condition holding for one group. It
// carries counts, names and labels, never a line.
type Alert struct {
	ID    string `json:"id"`
	Rule  string `json:"rule"`
	Kind  string `json:"kind"`
	State string `json:"state"`
	// Service and Env name the stream (log rules; audit rules grouped by
	// service and env); empty otherwise.
	Service  string `json:"service"`
	Env      string `json:"env"`
	Severity string `json:"severity"`
	// Group holds the group_by values, by name; nil when not grouped.
	Group       map[string]string `json:"group,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Count is the number of matches in the window at the last evaluation
	// (at resolve time: the last count while firing).
	Count     int64  `json:"count"`
	Threshold int64  `json:"threshold"`
	Window    string `json:"window"`
	Absent    bool   `json:"absent,omitempty"`
	// Sample is the last matching line (already redacted, at most
	// SampleMax bytes) of a rule with sample: true. The engine fills it;
	// the gateway keeps and delivers it only while policy allows
	// (alert_sample), and clears it otherwise.
	Sample string `json:"sample,omitempty"`
	// PendingSince is when the condition began to hold; StartedAt when the
	// alert fired; EndedAt when it resolved.
	PendingSince *time.Time `json:"pending_since"`
	StartedAt    *time.Time `json:"started_at"`
	EndedAt      *time.Time `json:"ended_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
}

// SampleMax bounds an alert's sample line, in bytes.
const SampleMax = 512

// sampleOf is a line's message cut to SampleMax bytes on a rune boundary,
// copied so the alert does not keep the ingest buffer alive.
func sampleOf(msg string) string {
	if len(msg) > SampleMax {
		msg = strings.ToValidUTF8(msg[:SampleMax], "")
	}
	return strings.Clone(msg)
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func newAlertID() string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return "alt_" + idEncoding.EncodeToString(b[:])[:20]
}

func timePtr(t time.Time) *time.Time { t = t.UTC(); return &t }

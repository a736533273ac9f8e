package logs

import "time"

// Entry is one normalised log line, the single schema every ingest format is
// turned into and every viewer receives.
//
// JSON field names are part of the public tail contract.
type Entry struct {
	// Seq is the per-stream sequence number, assigned by the Hub when the
	// entry is published. Zero before publication.
	Seq int64 `json:"seq"`
	// Time is when the event happened (from the record), or its arrival time.
	Time time.Time `json:"time"`
	// Observed is when loggate received the entry.
	Observed time.Time `json:"observed_time,omitzero"`
	Service  string    `json:"service"`
	Env      string    `json:"env"`
	// Level is one of the Level* constants.
	Level   string `json:"level"`
	Message string `json:"message"`
	// Attrs holds every other attribute, flattened to strings
	// ("http.status" -> "500"). Nil when there are none.
	Attrs     map[string]string `json:"attributes,omitempty"`
	TraceID   string            `json:"trace_id,omitempty"`
	SpanID    string            `json:"span_id,omitempty"`
	Host      string            `json:"host,omitempty"`
	Pod       string            `json:"pod,omitempty"`
	Container string            `json:"container,omitempty"`
	// Redactions counts masked values by rule name; nil when nothing was masked.
	Redactions map[string]int `json:"redactions,omitempty"`
	// Truncated is set when the message was cut to the maximum scanned size.
	Truncated bool `json:"truncated,omitempty"`
}

// Stream names one log stream: a service in an environment.
type Stream struct {
	Service string `json:"service"`
	Env     string `json:"env"`
}

// String renders the stream as "service/env".
func (s Stream) String() string { return s.Service + "/" + s.Env }

// Stream returns the stream the entry belongs to.
func (e *Entry) Stream() Stream { return Stream{Service: e.Service, Env: e.Env} }

// Levels, lowest first.
const (
	LevelTrace = "trace"
	LevelDebug = "debug"
	LevelInfo  = "info"
	LevelWarn  = "warn"
	LevelError = "error"
	LevelFatal = "fatal"
)

// levelRank orders levels for minimum-level filters.
var levelRank = map[string]int{
	LevelTrace: 1, LevelDebug: 2, LevelInfo: 3, LevelWarn: 4, LevelError: 5, LevelFatal: 6,
}

// LevelRank returns the rank of a normalised level (1 trace .. 6 fatal), or 0
// for an unknown level.
func LevelRank(level string) int { return levelRank[level] }

package api

import (
	"encoding/json"
	"time"
)

// TailPath is the WebSocket endpoint that tails a grant's stream.
func TailPath(grantID string) string { return "/api/v1/grants/" + grantID + "/tail" }

// WebSocket close codes of the tail protocol. An "end" frame with the
// matching reason comes just before the close.
const (
	CloseExpired      = 4001 // the grant expired
	CloseRevoked      = 4002 // the grant was revoked
	CloseShutdown     = 4003 // the server is shutting down: reconnect
	CloseLimit        = 4004 // too many tails for this grant or user
	CloseSlow         = 4005 // the viewer fell too far behind
	CloseUnavailable  = 4006 // the log backend is unavailable: reconnect
	CloseSessionEnded = 4007 // the browser session behind the tail was ended
)

// Types of the frames the server sends on a tail.
const (
	FrameSubscribed = "subscribed"
	FrameEntries    = "entries"
	FrameDropped    = "dropped"
	FrameGap        = "gap"
	FrameNotice     = "notice"
	FrameEnd        = "end"
)

// Reasons of an "end" frame.
const (
	EndExpired     = "expired"
	EndRevoked     = "revoked"
	EndShutdown    = "shutdown"
	EndLimit       = "limit_reached"
	EndSlow        = "too_slow"
	EndUnavailable = "backend_unavailable"
	EndSession     = "session_ended"
)

// TailFrame is any frame the server sends on a tail; Type says which fields
// are set. Entries stay raw so a JSON output can pass them through as sent.
type TailFrame struct {
	Type string `json:"type"`
	// "entries"
	Entries []json.RawMessage `json:"entries,omitempty"`
	// "dropped" (Count lines FromSeq..ToSeq were not delivered) and "gap"
	// (lines FromSeq..ToSeq are no longer kept).
	Count   int64  `json:"count,omitempty"`
	FromSeq int64  `json:"from_seq,omitempty"`
	ToSeq   int64  `json:"to_seq,omitempty"`
	Reason  string `json:"reason,omitempty"` // also "end": one of the End* reasons
	// "notice": Code is e.g. "backfill", "extended", "filter", "bad_filter".
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// "subscribed" and the "extended" notice.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// "subscribed"; ViewID names the view in the audit trail.
	ViewID      string        `json:"view_id,omitempty"`
	GrantID     string        `json:"grant_id,omitempty"`
	Service     string        `json:"service,omitempty"`
	Env         string        `json:"env,omitempty"`
	MaxLookback string        `json:"max_lookback,omitempty"`
	Filter      *TailFilter   `json:"filter,omitempty"`   // the filter in force
	Backfill    *TailBackfill `json:"backfill,omitempty"` // what the viewer asked to see again
}

// TailBackfill is the backfill a tail was opened with.
type TailBackfill struct {
	Lines int    `json:"lines"`
	Since string `json:"since"` // RFC 3339, or empty
	After int64  `json:"after"` // resume after this seq; 0: no resume
}

// Entry is one log line as a tail delivers it.
type Entry struct {
	Seq        int64             `json:"seq"`
	Time       time.Time         `json:"time"`
	Observed   time.Time         `json:"observed_time,omitzero"`
	Service    string            `json:"service"`
	Env        string            `json:"env"`
	Level      string            `json:"level"`
	Message    string            `json:"message"`
	Attrs      map[string]string `json:"attributes,omitempty"`
	TraceID    string            `json:"trace_id,omitempty"`
	SpanID     string            `json:"span_id,omitempty"`
	Host       string            `json:"host,omitempty"`
	Pod        string            `json:"pod,omitempty"`
	Container  string            `json:"container,omitempty"`
	Redactions map[string]int    `json:"redactions,omitempty"`
	Truncated  bool              `json:"truncated,omitempty"`
}

// TailFilter is what a viewer sends during a tail: {"type":"filter",...}
// changes its filter; {"type":"pause"} and {"type":"resume"} stop and
// restart delivery (what arrives meanwhile is skipped, and recorded so).
type TailFilter struct {
	Type    string            `json:"type,omitempty"`
	Level   string            `json:"level"`
	Grep    string            `json:"grep"`
	Exclude string            `json:"exclude"`
	Attrs   map[string]string `json:"attrs"`
}

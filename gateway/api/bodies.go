package api

// The bodies the API takes. Durations are Go duration syntax ("15m").

// CreateRequest is POST /api/v1/requests.
type CreateRequest struct {
	Service    string `json:"service"`
	Env        string `json:"env"`
	Duration   string `json:"duration"`
	Reason     string `json:"reason"`
	BreakGlass bool   `json:"break_glass"`
	// AlertID names the alert this request answers (from the alert's link).
	AlertID string `json:"alert_id,omitempty"`
	// Level asks the stream's services to emit this level while a view of
	// the grant is open; Scope narrows it to matching records.
	Level string            `json:"level,omitempty"`
	Scope map[string]string `json:"scope,omitempty"`
}

// Verdict is POST /api/v1/requests/{id}/approve and .../deny.
type Verdict struct {
	Comment string `json:"comment"`
}

// Revoke is POST /api/v1/grants/{id}/revoke.
type Revoke struct {
	Reason string `json:"reason"`
}

// Extend is POST /api/v1/grants/{id}/extend.
type Extend struct {
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

// CloseReview is POST /api/v1/reviews/{id}/close.
type CloseReview struct {
	Comment string `json:"comment"`
}

// CreateSource is POST /api/v1/sources.
type CreateSource struct {
	Name    string      `json:"name"`
	Streams []StreamRef `json:"streams"`
}

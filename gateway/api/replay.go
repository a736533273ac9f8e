package api

// ReplayPath is where a closed view is replayed (NDJSON: "entries" frames,
// then one ReplayResult line).
func ReplayPath(viewID string) string { return "/api/v1/views/" + viewID + "/replay" }

// FrameReplay is the type of the last line of a replay.
const FrameReplay = "replay"

// ReplayResult is the last line of a replay: whether the rebuilt entries
// are what the view showed (same entries digest, nothing missing).
type ReplayResult struct {
	Type           string          `json:"type"` // "replay"
	ViewID         string          `json:"view_id"`
	GrantID        string          `json:"grant_id,omitempty"`
	Service        string          `json:"service"`
	Env            string          `json:"env"`
	Viewer         string          `json:"viewer,omitempty"`
	Verified       bool            `json:"verified"`
	Entries        int64           `json:"replayed_entries"` // rebuilt by the replay
	ViewEntries    int64           `json:"view_entries"`     // sent by the view
	EntriesSHA256  string          `json:"entries_sha256"`
	ExpectedSHA256 string          `json:"expected_sha256,omitempty"`
	Missing        []ReplayMissing `json:"missing,omitempty"`
	Skips          []ReplaySkip    `json:"skips,omitempty"`
	Reason         string          `json:"reason,omitempty"` // why not verified, in words
}

// ReplayMissing is a part of a view the replay could not rebuild; Reason is
// retention, unreadable, sampled or not_recorded.
type ReplayMissing struct {
	From   int64  `json:"from,omitempty"`
	To     int64  `json:"to,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// ReplaySkip is a range of entries the view matched but did not send
// (reason slow_client or paused).
type ReplaySkip struct {
	Reason  string `json:"reason"`
	From    int64  `json:"from"`
	To      int64  `json:"to"`
	Entries int64  `json:"entries"`
}

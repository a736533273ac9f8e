package gateway

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// TestTailFilterFitsItsAuditEvent: a tail's filter is refused as a client
// error (400) or fits its stream.opened event. A filter too big for the
// trail otherwise turns the open into a 503 "audit trail unavailable" (and
// an audit failure counted), which any grant holder could cause at will.
func TestTailFilterFitsItsAuditEvent(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	g := store.Grant{ID: "grt_1", MaxLookback: 15 * time.Minute}
	s := &Server{}
	ctl := strings.Repeat("\x01", 1024) // 6 bytes each in JSON
	many := url.Values{}
	for i := range 32 {
		many.Set("attr.k"+strings.Repeat("x", i), ctl)
	}
	for name, q := range map[string]url.Values{
		"one long attr":      {"attr.pod": {strings.Repeat("p", 70<<10)}},
		"a long attr key":    {"attr." + strings.Repeat("k", 70<<10): {"x"}},
		"many escaped attrs": many,
		"escaped patterns":   {"grep": {ctl}, "exclude": {ctl}},
	} {
		tr, err := s.parseTail(q, g, now)
		if err != nil {
			checkClientError(t, err)
			continue
		}
		ev := audit.Event{ID: audit.NewEventID(), Time: now, Action: "stream.opened", Actor: audit.Actor{Kind: audit.ActorUser, Subject: "alice"},
			Outcome: "success", Details: map[string]any{"view_id": "view_x", "level": tr.filter.MinLevel, "grep": tr.filter.Grep,
				"exclude": tr.filter.Exclude, "attrs": tr.filter.Attrs}}
		if _, err := audit.EncodeTail(&ev); err != nil {
			t.Errorf("%s: accepted, but its stream.opened cannot be recorded: %v", name, err)
		}
	}
}

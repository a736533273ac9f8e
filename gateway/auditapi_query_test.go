package gateway

import (
	"net/http/httptest"
	"testing"
	"time"
)

// A duration in since or until counts back from the server's clock, not
// the wall clock: a gateway run with an injected clock answers by it.
func TestParseAuditQueryDurationsCountFromNow(t *testing.T) {
	now := time.Date(2031, 5, 4, 12, 0, 0, 0, time.UTC)
	r := httptest.NewRequest("GET", "/api/v1/audit?since=24h&until=30m", nil)
	q, err := parseAuditQuery(r, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(-24 * time.Hour); !q.Since.Equal(want) {
		t.Errorf("since = %v, want %v", q.Since, want)
	}
	if want := now.Add(-30 * time.Minute); !q.Until.Equal(want) {
		t.Errorf("until = %v, want %v", q.Until, want)
	}
}

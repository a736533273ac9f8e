package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
)

// TestAuditFilterTooLong: an over-long filter is a 400 naming the parameter
// and its limit (not a 503), and the refused search is audited with the
// query cut.
func TestAuditFilterTooLong(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/api/v1/audit?service=" + strings.Repeat("a", 100000),
		"/api/v1/audit/export?actor=" + strings.Repeat("a", 70000)} {
		var out map[string]string
		if got := h.call("carol", "GET", path, nil, &out); got != http.StatusBadRequest {
			t.Fatalf("GET %.40s…: status %d, want 400 (%v)", path, got, out)
		}
		if !strings.Contains(out["error"], "query parameter") || !strings.Contains(out["error"], "at most") {
			t.Errorf("error %q does not name the parameter and its limit", out["error"])
		}
	}
	evs := h.events(audit.Query{Outcome: "failure", Action: "export.*"})
	if len(evs) != 2 {
		t.Fatalf("got %d refused searches audited, want 2", len(evs))
	}
	for _, ev := range evs {
		if q, _ := ev.Details["query"].(string); len(q) > maxRecordedQuery+16 || !strings.HasSuffix(q, "[cut]") {
			t.Errorf("%s: recorded query of %d bytes, want it cut to about %d", ev.Action, len(q), maxRecordedQuery)
		}
	}
}

// TestListFiltersValidated: every list refuses an unknown outcome and a
// limit over 1000 the same way (400), as the README says.
func TestListFiltersValidated(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/api/v1/audit?outcome=bogus", "/api/v1/audit?limit=100000",
		"/api/v1/requests?limit=1001", "/api/v1/grants?limit=1001", "/api/v1/reviews?limit=1001",
		"/api/v1/sources?limit=1001"} {
		var out map[string]string
		if got := h.call("erin", "GET", path, nil, &out); got != http.StatusBadRequest {
			t.Errorf("GET %s: status %d, want 400 (%v)", path, got, out)
		}
	}
	if got := h.call("carol", "GET", "/api/v1/audit?limit=1000", nil, nil); got != http.StatusOK {
		t.Errorf("limit=1000: status %d, want 200", got)
	}
}

// TestInvalidStreamName: a given but malformed service says it is invalid
// and what is allowed, not that it is required.
func TestInvalidStreamName(t *testing.T) {
	h := newHarness(t)
	var out map[string]string
	body := map[string]any{"service": "../../etc", "env": "prod", "duration": "15m", "reason": "INC-1 x"}
	if got := h.call("alice", "POST", "/api/v1/requests", body, &out); got != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", got)
	}
	if msg := out["error"]; !strings.Contains(msg, "not a valid name") || strings.Contains(msg, "required") {
		t.Errorf("error %q: want it to say the service is invalid and what is allowed", msg)
	}
}

// TestRefusedExtendAndCancelAudited: extending someone else's grant and
// cancelling someone else's request are refused and recorded as denied.
func TestRefusedExtendAndCancelAudited(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("bob", "10m")
	if got := h.call("alice", "POST", "/api/v1/grants/"+g.ID+"/extend",
		map[string]string{"duration": "5m", "reason": "more time"}, nil); got != http.StatusForbidden {
		t.Fatalf("extend another's grant: status %d, want 403", got)
	}
	req := h.ask("bob", prodRequest(), http.StatusCreated)
	if got := h.call("alice", "POST", "/api/v1/requests/"+req.ID+"/cancel", nil, nil); got != http.StatusForbidden {
		t.Fatalf("cancel another's request: status %d, want 403", got)
	}
	if n := len(h.events(audit.Query{Action: "grant.extended", Outcome: "denied", GrantID: g.ID})); n != 1 {
		t.Errorf("refused extend: %d denied events, want 1", n)
	}
	if n := len(h.events(audit.Query{Action: "request.cancelled", Outcome: "denied", RequestID: req.ID})); n != 1 {
		t.Errorf("refused cancel: %d denied events, want 1", n)
	}
}

// TestTimelineShowsExtensionApproval: the approver of an extension appears
// in the grant's timeline.
func TestTimelineShowsExtensionApproval(t *testing.T) {
	h := newHarness(t)
	req := h.ask("alice", prodRequest(), http.StatusCreated)
	var approved api.Request
	if got := h.call("bob", "POST", "/api/v1/requests/"+req.ID+"/approve", nil, &approved); got != http.StatusOK || approved.Grant == nil {
		t.Fatalf("approve: status %d, grant %v", got, approved.Grant)
	}
	var ext api.Request
	if got := h.call("alice", "POST", "/api/v1/grants/"+approved.Grant.ID+"/extend",
		map[string]string{"duration": "15m", "reason": "INC-42 still digging"}, &ext); got != http.StatusCreated {
		t.Fatalf("extend: status %d", got)
	}
	if got := h.call("bob", "POST", "/api/v1/requests/"+ext.ID+"/approve", nil, nil); got != http.StatusOK {
		t.Fatalf("approve extension: status %d", got)
	}
	var tl struct {
		Events []audit.Event `json:"events"`
	}
	if got := h.call("alice", "GET", "/api/v1/grants/"+approved.Grant.ID+"/timeline", nil, &tl); got != http.StatusOK {
		t.Fatalf("timeline: status %d", got)
	}
	found := false
	for _, ev := range tl.Events {
		if ev.Action == "request.approved" && ev.Target.RequestID == ext.ID && ev.Actor.Email == "bob@example.com" {
			found = true
		}
	}
	if !found {
		t.Errorf("timeline has no request.approved by bob for extension %s", ext.ID)
	}
}

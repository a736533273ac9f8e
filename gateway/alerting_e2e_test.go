package gateway

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// stagingNeedsApproval rewrites the test policy so that staging needs an
// sre-leads approval, with the alert fast path of 30 minutes.
func stagingNeedsApproval(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "access.rego")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	old := "\t\"staging\": {\n\t\t\"approvals_required\": 0,\n\t\t\"approver_groups\": [],"
	if !strings.Contains(string(b), old) {
		t.Fatal("access.rego has no staging entry to change")
	}
	b = []byte(strings.Replace(string(b), old, "\t\"staging\": {\n\t\t\"approvals_required\": 1,\n\t\t\"approver_groups\": [\"sre-leads\"],", 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAlertLinkLeadsToAutoApprovedTail is the 3 a.m. story: a rule fires on
// ingested lines, its link opens the request form for the stream, the
// request names the alert, policy auto-approves 30 minutes because the
// alert is firing on that stream, and the engineer tails the stream.
func TestAlertLinkLeadsToAutoApprovedTail(t *testing.T) {
	ah := newAlertHarness(t)
	ctx := context.Background()
	stagingNeedsApproval(t, ah.policyDir)
	pol, err := policy.New(ctx, policy.Config{Dir: ah.policyDir, RunTestsOnLoad: false})
	if err != nil {
		t.Fatal(err)
	}
	ah.srv.cfg.Policy = pol

	// Without an alert, staging now needs an approval.
	plain := ah.ask("alice", map[string]any{"service": "checkout", "env": "staging", "duration": "30m", "reason": "looking"}, http.StatusCreated)
	if plain.State != store.StatePending {
		t.Fatalf("plain staging request: %s, want pending", plain.State)
	}

	line := `{"level":"error","message":"payment failed"}`
	ah.ingest(line, line, line)
	ah.engine.Tick(ctx)
	_, items := ah.alerts("carol")
	if len(items) != 1 || items[0].State != "firing" {
		t.Fatalf("alerts = %+v", items)
	}
	link, err := url.Parse(items[0].Link)
	if err != nil {
		t.Fatal(err)
	}
	q := link.Query()
	if q.Get("stream") != "checkout/staging" || q.Get("alert_id") != items[0].ID || !strings.Contains(q.Get("reason"), "checkout-payment-errors") {
		t.Fatalf("link %s does not prefill the stream, alert and reason", link)
	}
	// The form on that page is served by the UI (not wired in this test);
	// it posts what the link carries.
	service, env, _ := strings.Cut(q.Get("stream"), "/")
	body := map[string]any{"service": service, "env": env, "duration": "30m", "reason": q.Get("reason"), "alert_id": q.Get("alert_id")}
	v := ah.ask("alice", body, http.StatusCreated)
	if v.State != store.StateApproved || v.Grant == nil || v.AlertID != items[0].ID {
		t.Fatalf("request with alert_id: state %s, grant %v, alert_id %q; want approved", v.State, v.Grant, v.AlertID)
	}
	created := ah.events(audit.Query{Action: "request.created", RequestID: v.ID})
	if len(created) != 1 || created[0].Details["alert_id"] != items[0].ID || created[0].Details["alert_state"] != "firing" {
		t.Errorf("request.created = %+v", created)
	}
	// Longer than the fast path allows: the normal way (an approval).
	long := body
	long["duration"] = "2h"
	if v := ah.ask("alice", long, http.StatusCreated); v.State != store.StatePending {
		t.Errorf("2h request with alert: %s, want pending", v.State)
	}
	// An unknown alert id is a client error.
	bad := map[string]any{"service": "checkout", "env": "staging", "duration": "30m", "reason": "x", "alert_id": "alt_nope"}
	if code := ah.call("alice", http.MethodPost, "/api/v1/requests", bad, nil); code != http.StatusBadRequest {
		t.Errorf("unknown alert_id: %d, want 400", code)
	}

	conn, _, err := ah.dialTail("alice", v.Grant.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ah.ingest(`{"level":"error","message":"payment failed again"}`)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("no line on the tail: %v", err)
		}
		if m["type"] != "entries" {
			continue
		}
		if es, _ := m["entries"].([]any); len(es) == 1 && es[0].(map[string]any)["message"] == "payment failed again" {
			break
		}
		t.Fatalf("tail sent %v, want the new line", m)
	}
}

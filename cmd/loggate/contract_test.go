package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Contract tests: regressions found by checking the documented contract
// (README.md and the issue texts) from outside, against `serve --dev`.

// TestContractVerifyExportedCheckpointNote: the README says to export the
// checkpoint's `note` field and keep it; `jq -r .note > FILE` adds a second
// trailing newline, and `audit verify --checkpoint FILE` must still accept it.
func TestContractVerifyExportedCheckpointNote(t *testing.T) {
	g := startGateway(t)
	carol := g.token("carol")
	var cp struct {
		Note string `json:"note"`
	}
	if st := g.call("GET", "/api/v1/audit/checkpoint", carol, nil, &cp); st != 200 || cp.Note == "" {
		t.Fatalf("GET /api/v1/audit/checkpoint: status %d, note %q", st, cp.Note)
	}
	for _, tc := range []struct {
		name, text string
	}{
		{"as served", cp.Note},
		{"jq -r adds a newline", cp.Note + "\n"},
		{"CRLF", string(bytes.ReplaceAll([]byte(cp.Note), []byte("\n"), []byte("\r\n")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "cp.note")
			if err := os.WriteFile(file, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			err := runAuditVerify(context.Background(), []string{"--data", g.r.DataDir, "--checkpoint", file},
				func(string) string { return "" }, &out, &errOut)
			if err != nil {
				t.Errorf("audit verify --checkpoint: got %v, want success\n%s%s", err, out.String(), errOut.String())
			}
		})
	}
}

// TestContractAuditEventFields: issue 2 says every audit event has at least
// id, seq, time, action, actor, target, outcome, prev_hash and hash; events
// about no object (auth.token, export.search) must still carry "target".
func TestContractAuditEventFields(t *testing.T) {
	g := startGateway(t)
	alice, carol := g.token("alice"), g.token("carol")
	var req requestJSON
	if st := g.call("POST", "/api/v1/requests", alice, map[string]string{"service": "checkout", "env": "staging",
		"duration": "1m", "reason": "INC-1 contract"}, &req); st != 201 {
		t.Fatalf("POST /api/v1/requests: status %d, want 201", st)
	}
	g.call("GET", "/api/v1/audit", carol, nil, nil) // an export.search event
	var page struct {
		Items []map[string]any `json:"items"`
	}
	if st := g.call("GET", "/api/v1/audit?limit=1000", carol, nil, &page); st != 200 || len(page.Items) == 0 {
		t.Fatalf("GET /api/v1/audit: status %d, %d items", st, len(page.Items))
	}
	seen := map[string]bool{}
	for _, ev := range page.Items {
		seen[ev["action"].(string)] = true
		for _, f := range []string{"id", "seq", "time", "action", "actor", "target", "outcome", "prev_hash", "hash"} {
			if _, ok := ev[f]; !ok {
				t.Errorf("event %v (%v) has no %q field", ev["seq"], ev["action"], f)
			}
		}
	}
	for _, a := range []string{"auth.token", "export.search", "request.created"} {
		if !seen[a] {
			t.Errorf("no %s event among %v", a, seen)
		}
	}
}

// TestContractWrongMethod: a documented path used with the wrong method is a
// JSON 405 naming the allowed methods (not "no such endpoint"); an unknown
// path stays a JSON 404.
func TestContractWrongMethod(t *testing.T) {
	g := startGateway(t)
	alice := g.token("alice")
	for _, tc := range []struct {
		method, path string
		want         int
		allow        string
	}{
		{"PUT", "/api/v1/requests", 405, "GET, HEAD, POST"},
		{"GET", "/api/v1/requests/req_x/approve", 405, "POST"},
		{"DELETE", "/api/v1/grants/grt_x", 405, "GET, HEAD"},
		{"GET", "/api/v1/ingest", 405, "POST"},
		{"GET", "/v1/logs", 405, "POST"},
		{"GET", "/loki/api/v1/push", 405, "POST"},
		{"GET", "/api/v1/no-such-thing", 404, ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, g.url+tc.path, nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error, Code string }
			derr := json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.want || derr != nil || body.Error == "" {
				t.Errorf("status %d (JSON error %q, decode err %v), want %d with a JSON error", resp.StatusCode, body.Error, derr, tc.want)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow: got %q, want %q", got, tc.allow)
			}
		})
	}
}

// TestContractBadInputMessages: malformed input is a 400 whose message names
// the problem in JSON terms, never a Go type name, and stores nothing.
func TestContractBadInputMessages(t *testing.T) {
	g := startGateway(t)
	alice, carol := g.token("alice"), g.token("carol")
	for _, tc := range []struct {
		name, path, token, body, want string
	}{
		{"array body", "/api/v1/requests", alice, `[1,2]`, "request body must be a JSON object, not array"},
		{"number for a string", "/api/v1/requests", alice,
			`{"service":"checkout","env":"staging","duration":900,"reason":"INC-1 x"}`, `field "duration": expected a string, not number`},
		{"string for a bool", "/api/v1/requests", alice,
			`{"service":"checkout","env":"staging","duration":"1m","reason":"INC-1 x","break_glass":"yes"}`, `field "break_glass": expected true or false, not string`},
		{"string for a list", "/api/v1/sources", carol, `{"name":"x","streams":"all"}`, `field "streams": expected an array, not string`},
		{"not a time", "/api/v1/audit/purge", carol, `{"before":"tomorrow"}`, `time "tomorrow" is not an RFC 3339 time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body struct{ Error string }
			if st := g.call("POST", tc.path, tc.token, tc.body, &body); st != 400 {
				t.Errorf("status %d, want 400 (%q)", st, body.Error)
			}
			if !strings.Contains(body.Error, tc.want) {
				t.Errorf("error %q, want it to contain %q", body.Error, tc.want)
			}
			if strings.Contains(body.Error, "gateway.") || strings.Contains(body.Error, "store.") || strings.Contains(body.Error, "2006-01-02T15:04:05Z07:00") {
				t.Errorf("error %q leaks a Go type or layout", body.Error)
			}
		})
	}
	var list struct {
		Items []requestJSON `json:"items"`
	}
	if st := g.call("GET", "/api/v1/requests", alice, nil, &list); st != 200 || len(list.Items) != 0 {
		t.Errorf("after rejected requests: status %d, %d requests stored, want 0", st, len(list.Items))
	}
}

// TestContractConcurrentRevokeAudit: revokes racing on one grant succeed once
// (the others 409), and the trail shows exactly one effective grant.revoked:
// a revoke audited before its store update lost the race is followed by an
// outcome "error" event saying it was not applied.
func TestContractConcurrentRevokeAudit(t *testing.T) {
	g := startGateway(t)
	alice, carol := g.token("alice"), g.token("carol")
	var req requestJSON
	if st := g.call("POST", "/api/v1/requests", alice, map[string]string{"service": "checkout", "env": "staging",
		"duration": "10m", "reason": "INC-1 race"}, &req); st != 201 || req.Grant == nil {
		t.Fatalf("POST /api/v1/requests: status %d, grant %v", st, req.Grant)
	}
	const n = 8
	statuses := make(chan int, n)
	start := make(chan struct{})
	for i := range n {
		go func() {
			<-start
			statuses <- g.call("POST", "/api/v1/grants/"+req.Grant.ID+"/revoke", alice, map[string]string{"reason": fmt.Sprint("race ", i)}, nil)
		}()
	}
	close(start)
	ok := 0
	for range n {
		switch st := <-statuses; st {
		case 200:
			ok++
		case 409:
		default:
			t.Errorf("revoke: status %d, want 200 or 409", st)
		}
	}
	if ok != 1 {
		t.Errorf("%d revokes succeeded, want 1", ok)
	}
	var page struct {
		Items []auditJSON `json:"items"`
	}
	if st := g.call("GET", "/api/v1/audit?action=grant.revoked&grant="+req.Grant.ID, carol, nil, &page); st != 200 {
		t.Fatalf("GET /api/v1/audit: status %d", st)
	}
	// The trail is append-only: a success recorded before the race was lost
	// stays, and must be followed by an "error" event saying it was not applied.
	success, notApplied := 0, 0
	for _, ev := range page.Items {
		if ev.Outcome == "success" {
			success++
		}
		if ev.Outcome == "error" {
			notApplied++
		}
	}
	if success-notApplied != 1 {
		t.Errorf("grant.revoked: %d successes, %d not applied; want exactly one effective revoke", success, notApplied)
	}
}

// TestContractAuditTimeBounds: since/until far outside the present must
// bound the search, not wrap around and match every event.
func TestContractAuditTimeBounds(t *testing.T) {
	g := startGateway(t)
	carol := g.token("carol")
	g.call("GET", "/api/v1/audit", carol, nil, nil) // at least one event exists
	for _, tc := range []struct {
		query string
		empty bool
	}{
		{"since=9999-12-31T23:59:59Z", true},
		{"since=2300-01-01T00:00:00Z", true},
		{"until=1600-01-01T00:00:00Z", true},
		{"since=1600-01-01T00:00:00Z", false},
		{"until=9999-12-31T23:59:59Z", false},
	} {
		t.Run(tc.query, func(t *testing.T) {
			var page struct {
				Items []auditJSON `json:"items"`
			}
			if st := g.call("GET", "/api/v1/audit?"+tc.query, carol, nil, &page); st != 200 {
				t.Fatalf("status %d, want 200", st)
			}
			if got := len(page.Items) == 0; got != tc.empty {
				t.Errorf("%d events; want empty=%v", len(page.Items), tc.empty)
			}
		})
	}
}

// TestContractResumeKeepsLookback: after=SEQ resumes a tail, but only "as far
// back as the policy's max_lookback allows" (issue 5): entries older than the
// grant's lookback are withheld and reported as a gap, exactly as lines= and
// since= withhold them.
func TestContractResumeKeepsLookback(t *testing.T) {
	g := startGateway(t)
	alice := g.token("alice")
	src := g.r.SourceTokens["checkout/staging"] // staging: max_lookback 1h
	old := time.Now().Add(-3 * time.Hour).UTC().Format(time.RFC3339)
	if st := g.ingest("checkout", "staging", src, `{"message":"old 1","time":"`+old+`"}`, `{"message":"old 2","time":"`+old+`"}`,
		`{"message":"new 3"}`); st != 200 {
		t.Fatalf("ingest: status %d", st)
	}
	var req requestJSON
	if st := g.call("POST", "/api/v1/requests", alice, map[string]string{"service": "checkout", "env": "staging",
		"duration": "10m", "reason": "INC-1 resume"}, &req); st != 201 || req.Grant == nil {
		t.Fatalf("request: status %d, grant %v", st, req.Grant)
	}
	for _, query := range []string{"since=2h", "after=1"} {
		t.Run(query, func(t *testing.T) {
			ws := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + req.Grant.ID + "/tail?" + query
			conn, _, err := websocket.DefaultDialer.Dial(ws, http.Header{"Authorization": {"Bearer " + alice}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var got []string
			for !slices.Contains(got, "new 3") {
				var m struct {
					Type    string `json:"type"`
					Entries []struct {
						Message string `json:"message"`
					} `json:"entries"`
				}
				if err := conn.ReadJSON(&m); err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				for _, e := range m.Entries {
					got = append(got, e.Message)
				}
			}
			if slices.Contains(got, "old 1") || slices.Contains(got, "old 2") {
				t.Errorf("%s delivered %q, older than the grant's 1h lookback", query, got)
			}
		})
	}
}

// TestContractBadCursor: every list answers a cursor it did not issue with
// 400 "malformed cursor", the audit trail included.
func TestContractBadCursor(t *testing.T) {
	g := startGateway(t)
	alice, carol := g.token("alice"), g.token("carol")
	for _, tc := range []struct{ path, token string }{
		{"/api/v1/requests?cursor=zzz", alice},
		{"/api/v1/grants?cursor=zzz", alice},
		{"/api/v1/reviews?cursor=zzz", carol},
		{"/api/v1/audit?cursor=zzz", carol},
	} {
		var body struct{ Error string }
		if st := g.call("GET", tc.path, tc.token, nil, &body); st != 400 || body.Error != "malformed cursor" {
			t.Errorf("GET %s: status %d, error %q; want 400 \"malformed cursor\"", tc.path, st, body.Error)
		}
	}
}

// TestContractPolicyEvalShape: `loggate policy eval` prints the decision in
// the API's JSON shape (snake_case fields, Go duration strings), not Go field
// names with durations in nanoseconds.
func TestContractPolicyEvalShape(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(in, []byte(`{"action":"request","requester":{"id":"x|alice","groups":["engineers"]},
 "service":"checkout","env":"prod","duration":"30m","reason":"INC-1234 checkout errors"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := runPolicy(context.Background(), []string{"eval", "--input", in}, &out, &errOut); err != nil {
		t.Fatalf("policy eval: %v\n%s", err, errOut.String())
	}
	var got struct {
		Decision map[string]any `json:"decision"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("policy eval output is not JSON: %v\n%s", err, out.String())
	}
	for k, want := range map[string]any{"allow": true, "approvals_required": 1.0, "max_duration": "4h0m0s", "max_lookback": "15m0s"} {
		if got.Decision[k] != want {
			t.Errorf("decision.%s: got %v, want %v", k, got.Decision[k], want)
		}
	}
	for _, k := range []string{"id", "policy_revision", "reasons", "approver_groups"} {
		if _, ok := got.Decision[k]; !ok {
			t.Errorf("decision has no %q: %v", k, got.Decision)
		}
	}
}

// TestContractReasonRejectsBidiOverrides: a reason that would display
// differently to an approver than it is stored is refused.
func TestContractReasonRejectsBidiOverrides(t *testing.T) {
	g := startGateway(t)
	alice := g.token("alice")
	var out map[string]string
	code := g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "staging",
		"duration": "5m", "reason": "INC-1 \u202egnp.exe"}, &out)
	if code != http.StatusBadRequest || !strings.Contains(out["error"], "bidirectional") {
		t.Errorf("bidi reason: %d %v, want 400 naming bidirectional control characters", code, out)
	}
}

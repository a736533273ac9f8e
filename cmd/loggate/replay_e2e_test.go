package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// openView dials a tail with a query and returns the connection and the
// view id the gateway announced.
func (g *gatewayT) openView(grantID, token, query string) (*tailConn, string) {
	g.t.Helper()
	u := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + grantID + "/tail?" + query
	conn, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		g.t.Fatalf("tail: %v", err)
	}
	g.t.Cleanup(func() { conn.Close() })
	var first struct {
		Type   string `json:"type"`
		ViewID string `json:"view_id"`
	}
	if err := conn.ReadJSON(&first); err != nil || first.Type != "subscribed" || first.ViewID == "" {
		g.t.Fatalf("first tail message %+v, %v", first, err)
	}
	return &tailConn{t: g.t, conn: conn}, first.ViewID
}

// stagingGrant asks as token for staging access (auto-approved) and
// returns the request with its grant.
func (g *gatewayT) stagingGrant(token, duration, reason string) requestJSON {
	g.t.Helper()
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", token, map[string]any{"service": "checkout", "env": "staging",
		"duration": duration, "reason": reason}, &req); code != http.StatusCreated || req.Grant == nil {
		g.t.Fatalf("request: %d %+v", code, req)
	}
	return req
}

type replayOut struct {
	status   int
	messages []string
	result   map[string]any
}

func (g *gatewayT) replayView(viewID, token, reason string) replayOut {
	g.t.Helper()
	req, _ := http.NewRequest("GET", g.url+"/api/v1/views/"+viewID+"/replay?reason="+reason, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := replayOut{status: resp.StatusCode}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var line struct {
			Type    string `json:"type"`
			Entries []struct {
				Message string `json:"message"`
			} `json:"entries"`
		}
		_ = json.Unmarshal(sc.Bytes(), &line)
		for _, e := range line.Entries {
			out.messages = append(out.messages, e.Message)
		}
		if line.Type == "replay" {
			_ = json.Unmarshal(sc.Bytes(), &out.result)
		}
	}
	return out
}

// waitViewClosed polls the trail (as a security token) until the view's
// stream.closed is there.
func (g *gatewayT) waitViewClosed(grantID, viewID, token string) {
	g.t.Helper()
	if !within(10*time.Second, 20*time.Millisecond, func() bool {
		var page struct {
			Items []struct {
				Details map[string]any `json:"details"`
			} `json:"items"`
		}
		g.call("GET", "/api/v1/audit?action=stream.closed&grant="+grantID, token, nil, &page)
		for _, ev := range page.Items {
			if ev.Details["view_id"] == viewID {
				return true
			}
		}
		return false
	}) {
		g.t.Fatalf("no stream.closed for %s", viewID)
	}
}

// A view on replica A is replayed on replica B from the shared feed:
// the lines alice saw at warn and above, redacted as she saw them,
// verified against the digest A recorded.
func TestReplayAcrossReplicas(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	a, b := startReplicas(t, url)
	alice, bob, carol := a.token("alice"), a.token("bob"), a.token("carol")
	grant := approvedGrant(t, a, b, alice, bob, "10m")

	tc, viewID := a.openView(grant, alice, "level=warn")
	var lines []string
	want := 0
	for i := range 30 {
		level := []string{"info", "warn", "error"}[i%3]
		msg := fmt.Sprintf("line %d", i)
		if i == 7 {
			msg = "login failed password=hunter2 for bob"
		}
		if level != "info" {
			want++
		}
		lines = append(lines, fmt.Sprintf(`{"message":%q,"level":%q}`, msg, level))
	}
	if code := b.ingest("checkout", "prod", replicaSourceToken, lines...); code != 200 {
		t.Fatalf("ingest on B: %d", code)
	}
	seen, _, _ := tc.next(want, 10*time.Second)
	if len(seen) != want {
		t.Fatalf("alice saw %d entries, want %d", len(seen), want)
	}
	tc.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
	tc.conn.Close()
	b.waitViewClosed(grant, viewID, carol)

	out := b.replayView(viewID, carol, "INC-77%20review")
	if out.status != 200 || out.result["verified"] != true {
		t.Fatalf("replay on B: status %d, result %v", out.status, out.result)
	}
	if len(out.messages) != want {
		t.Errorf("replay shows %d lines, alice saw %d", len(out.messages), want)
	}
	for i, m := range out.messages {
		if m != seen[i]["message"] {
			t.Errorf("replay line %d %q, alice saw %q", i, m, seen[i]["message"])
		}
		if strings.Contains(m, "hunter2") {
			t.Errorf("replay shows the secret alice never saw: %q", m)
		}
	}
	if out := b.replayView(viewID, alice, "curious"); out.status != http.StatusForbidden || len(out.messages) != 0 {
		t.Errorf("replay by alice: %d with %d lines, want 403", out.status, len(out.messages))
	}
}

// Retention removes what a view showed: its replay says so and is not
// verified. A legal hold on another grant keeps that grant's lines past
// the same retention, and its replay still verifies after a restart.
func TestReplayAfterRetentionAndLegalHold(t *testing.T) {
	const src = "lgs_replay_test_token_0123456789abcdef"
	data := t.TempDir()
	args := []string{"--dev-source-token", src, "--log-retention", "staging=5//"}
	g := startGatewayData(t, data, args...)
	alice, carol := g.token("alice"), g.token("carol")
	view := func(n int, prefix string) (grant, viewID string) {
		req := g.stagingGrant(alice, "30m", "debugging "+prefix)
		tc, viewID := g.openView(req.Grant.ID, alice, "")
		var lines []string
		for i := range n {
			lines = append(lines, fmt.Sprintf(`{"message":"%s %d"}`, prefix, i))
		}
		if code := g.ingest("checkout", "staging", src, lines...); code != 200 {
			t.Fatalf("ingest: %d", code)
		}
		if seen, _, _ := tc.next(n, 10*time.Second); len(seen) != n {
			t.Fatalf("saw %d entries, want %d", len(seen), n)
		}
		tc.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		tc.conn.Close()
		g.waitViewClosed(req.Grant.ID, viewID, carol)
		return req.Grant.ID, viewID
	}
	heldGrant, heldView := view(4, "held")
	if code := g.call("POST", "/api/v1/grants/"+heldGrant+"/revoke", alice, map[string]string{"reason": "done"}, nil); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code := g.call("POST", "/api/v1/grants/"+heldGrant+"/legal-hold", alice, map[string]any{"on": true, "reason": "x"}, nil); code != http.StatusForbidden {
		t.Errorf("legal hold by alice: %d, want 403", code)
	}
	if code := g.call("POST", "/api/v1/grants/"+heldGrant+"/legal-hold", carol, map[string]any{"on": true}, nil); code != http.StatusBadRequest {
		t.Errorf("legal hold without a reason: %d, want 400", code)
	}
	if code := g.call("POST", "/api/v1/grants/"+heldGrant+"/legal-hold", carol, map[string]any{"on": true, "reason": "LEGAL-7"}, nil); code != 200 {
		t.Fatalf("legal hold: %d", code)
	}
	_, gone := view(4, "gone")

	// After a restart the backlog is trimmed to 5 entries on the next ingest.
	g.stop()
	g = startGatewayData(t, data, args...)
	carol = g.token("carol")
	var more []string
	for i := range 10 {
		more = append(more, fmt.Sprintf(`{"message":"later %d"}`, i))
	}
	if code := g.ingest("checkout", "staging", src, more...); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if out := g.replayView(heldView, carol, "LEGAL-7"); out.status != 200 || out.result["verified"] != true || len(out.messages) != 4 {
		t.Errorf("replay of the held view: %d, %d lines, %v", out.status, len(out.messages), out.result)
	}
	// The CLI: the held view verifies (exit 0, its lines on stdout); the
	// trimmed one exits 1 saying what is missing; a reason is required.
	cl := newCLI(t, g.url).as(carol)
	if stdout, stderr, code := cl.run("audit", "replay", heldView, "--reason", "LEGAL-7"); code != 0 ||
		strings.Count(stdout, "\n") != 4 || !strings.Contains(stdout, "held 3") || !strings.Contains(stderr, "Verified") {
		t.Errorf("audit replay of the held view: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, stderr, code := cl.run("audit", "replay", gone, "--reason", "LEGAL-7"); code != 1 ||
		!strings.Contains(stderr, "NOT verified") || !strings.Contains(stderr, "retention") {
		t.Errorf("audit replay of the trimmed view: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := cl.run("audit", "replay", gone); code != 2 || !strings.Contains(stderr, "--reason") {
		t.Errorf("audit replay without a reason: exit %d\n%s", code, stderr)
	}
	out := g.replayView(gone, carol, "LEGAL-7")
	missing, _ := out.result["missing"].([]any)
	if out.status != 200 || out.result["verified"] != false || len(out.messages) != 0 || len(missing) == 0 ||
		missing[0].(map[string]any)["reason"] != "retention" {
		t.Errorf("replay of a view retention removed: %d, %d lines, %v; want not verified, missing by retention", out.status, len(out.messages), out.result)
	}
}

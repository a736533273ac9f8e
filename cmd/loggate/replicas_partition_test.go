package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// startPartitionedReplicas runs replica A on Redis directly and replica B
// through a pausable TCP proxy, so a test can cut B alone off from Redis.
func startPartitionedReplicas(t *testing.T, extra ...string) (a, b *gatewayT, proxy *redistest.Proxy) {
	t.Helper()
	srv := redistest.Start(t)
	proxy = redistest.StartProxy(t, srv.Addr)
	keys, auditKey := sharedKeyFile(t), sharedAuditKeyFile(t)
	common := []string{"--dev-source-token", replicaSourceToken, "--session-key-file", keys, "--audit-signing-key-file", auditKey}
	a = startGateway(t, append(append([]string{"--redis", srv.URL()}, common...), extra...)...)
	b = startGateway(t, append(append([]string{"--redis", proxy.URL(), "--issuer", a.url + "/dev/oidc"}, common...), extra...)...)
	return a, b, proxy
}

// hangClient detects hangs: its timeout is far above any staleness bound.
var hangClient = &http.Client{Timeout: 30 * time.Second}

// callNoHang is call with hangClient; it fails the test on a timeout.
func callNoHang(t *testing.T, g *gatewayT, method, path, token string) (int, map[string]any, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(method, g.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	start := time.Now()
	resp, err := hangClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v (a hang: no answer within %s)", method, path, err, hangClient.Timeout)
	}
	defer resp.Body.Close()
	took := time.Since(start)
	data, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(data, &body)
	return resp.StatusCode, body, took
}

// readyzCheck returns /readyz's status and one of its checks.
func readyzCheck(t *testing.T, g *gatewayT, name string) (int, string) {
	t.Helper()
	code, body, _ := callNoHang(t, g, "GET", "/readyz", "")
	checks, _ := body["checks"].(map[string]any)
	v, _ := checks[name].(string)
	return code, v
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	if !within(30*time.Second, 20*time.Millisecond, ok) {
		t.Fatalf("timed out waiting for %s", what)
	}
}

// TestCutReplicaEndsTailsAndRefusesUntilHealed is finding 3 of issue 17:
// replica B is cut off from Redis by a blackholed link (connections stay
// open, nothing flows) and a grant is revoked on A. B cannot hear the
// revocation, so within its staleness bound it must end the viewer with
// 4006 (no entry ingested after the revoke reaching it), answer API calls
// with 503 rather than hang, refuse new tails and report not ready; once
// the link heals it admits tails again.
func TestCutReplicaEndsTailsAndRefusesUntilHealed(t *testing.T) {
	a, b, proxy := startPartitionedReplicas(t)
	alice, bob := a.token("alice"), a.token("bob")
	grant := approvedGrant(t, a, b, alice, bob, "10m")
	later := approvedGrant(t, a, b, alice, bob, "10m")
	tc := b.tail(grant, alice)
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"before the cut"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if es, end, _ := tc.next(1, 10*time.Second); len(es) != 1 || end != nil {
		t.Fatalf("before the cut: %v, end %v", es, end)
	}

	proxy.Pause()
	waitUntil(t, "the proxy holding B's traffic", func() bool { return proxy.Held() > 0 })
	// Before B knows it is cut off: its first Redis call runs into its
	// deadline, and the request answers 503 instead of hanging.
	status, body, took := callNoHang(t, b, "GET", "/api/v1/grants/"+grant, alice)
	t.Logf("first API call on freshly cut B answered %d in %s", status, took)
	if status != http.StatusServiceUnavailable || body["error"] == nil {
		t.Errorf("first API call on cut B: %d %v; want 503 with a message", status, body)
	}
	if code := a.call("POST", "/api/v1/grants/"+grant+"/revoke", bob, map[string]string{"reason": "INC-77 closed"}, nil); code != 200 {
		t.Fatalf("revoke on A: %d", code)
	}
	revoked := time.Now()
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"after the revoke 1"}`, `{"message":"after the revoke 2"}`); code != 200 {
		t.Fatalf("ingest after the revoke: %d", code)
	}
	es, end, code := tc.next(0, 30*time.Second)
	t.Logf("revoke on A to close on cut B: %s", time.Since(revoked))
	if code != 4006 || end["reason"] != "backend_unavailable" {
		t.Errorf("viewer on cut B: end %v, close %d; want backend_unavailable, 4006", end, code)
	}
	for _, e := range es {
		if strings.HasPrefix(e["message"].(string), "after the revoke") {
			t.Errorf("entry ingested after the revoke reached the viewer on cut B: %v", e)
		}
	}

	status, body, took = callNoHang(t, b, "GET", "/api/v1/requests?state=pending", bob)
	t.Logf("API call on cut B answered %d in %s", status, took)
	if status != http.StatusServiceUnavailable || body["error"] == nil {
		t.Errorf("API call on cut B: %d %v; want 503 with a message", status, body)
	}
	waitUntil(t, "B's /readyz reporting the control stream stale", func() bool {
		code, check := readyzCheck(t, b, "control_stream")
		return code == http.StatusServiceUnavailable && check != "ok" && check != ""
	})
	u := "ws" + strings.TrimPrefix(b.url, "http") + "/api/v1/grants/" + later + "/tail"
	_, resp, err := (&websocket.Dialer{HandshakeTimeout: 30 * time.Second}).Dial(u, http.Header{"Authorization": {"Bearer " + alice}})
	if err == nil || resp == nil {
		t.Fatalf("new tail on stale B: err %v; want a refusal", err)
	}
	var refusal map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&refusal)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || refusal["code"] != "replica_stale" || refusal["error"] == nil {
		t.Errorf("new tail on stale B: %d %v; want 503 replica_stale with a message", resp.StatusCode, refusal)
	}

	proxy.Resume()
	waitUntil(t, "B ready again", func() bool { code, _ := readyzCheck(t, b, "control_stream"); return code == http.StatusOK })
	again := b.tail(later, alice)
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"healed"}`); code != 200 {
		t.Fatalf("ingest after healing: %d", code)
	}
	es, end, _ = again.next(1, 10*time.Second)
	if len(es) != 1 || es[0]["message"] != "healed" || end != nil {
		t.Errorf("tail on healed B: %v, end %v; want the entry \"healed\"", es, end)
	}
}

// TestShortCutKeepsTails: a cut well under the staleness bound ends no
// tail: the viewer on B keeps streaming once the link is back.
func TestShortCutKeepsTails(t *testing.T) {
	a, b, proxy := startPartitionedReplicas(t, "--control-staleness-bound", "3s")
	alice, bob := a.token("alice"), a.token("bob")
	grant := approvedGrant(t, a, b, alice, bob, "10m")
	tc := b.tail(grant, alice)

	proxy.Pause()
	waitUntil(t, "the proxy holding B's traffic", func() bool { return proxy.Held() > 0 })
	time.Sleep(500 * time.Millisecond) // the cut itself: a sixth of the bound
	proxy.Resume()

	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"after a short cut"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	es, end, code := tc.next(1, 10*time.Second)
	if len(es) != 1 || es[0]["message"] != "after a short cut" || end != nil || code != 0 {
		t.Errorf("viewer on B after a short cut: %v, end %v, close %d; want the entry and no end", es, end, code)
	}
	if code, check := readyzCheck(t, b, "control_stream"); code != http.StatusOK || check != "ok" {
		t.Errorf("B /readyz after a short cut: %d control_stream %q", code, check)
	}
}

package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/cluster"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

const replicaSourceToken = "lgs_replica_test_token_0123456789abcdef"

// startReplicas runs two gateways on one Redis. B trusts A's development
// identity provider (same --issuer), so tokens from a.token work on both.
func startReplicas(t testing.TB, redisURL string, extra ...string) (a, b *gatewayT) {
	t.Helper()
	keys, auditKey := sharedKeyFile(t), sharedAuditKeyFile(t)
	a = startGateway(t, append([]string{"--redis", redisURL, "--dev-source-token", replicaSourceToken, "--session-key-file", keys,
		"--audit-signing-key-file", auditKey}, extra...)...)
	b = startGateway(t, append([]string{"--redis", redisURL, "--dev-source-token", replicaSourceToken, "--session-key-file", keys,
		"--audit-signing-key-file", auditKey, "--issuer", a.url + "/dev/oidc"}, extra...)...)
	return a, b
}

// sharedKeyFile writes a session key file for replicas to share.
func sharedKeyFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "session.keys")
	if err := os.WriteFile(p, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sharedAuditKeyFile writes the audit checkpoint key every replica loads
// (a note signer key; a fixed seed is fine in tests).
func sharedAuditKeyFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "audit.key")
	seed := base64.StdEncoding.EncodeToString(append([]byte{1}, bytes.Repeat([]byte{7}, 32)...))
	if err := os.WriteFile(p, []byte("PRIVATE+KEY+loggate/audit+00000000+"+seed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// trailWriter writes on the replicas' shared trail in Redis (rc), signing
// with the audit key in keyFile as a replica does.
func trailWriter(t testing.TB, rc *redis.Client, keyFile string) *cluster.Audit {
	t.Helper()
	key, err := cluster.LoadSigningKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cluster.NewAudit(cluster.AuditConfig{Client: rc, Prefix: redisPrefix, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// tailConn is an open tail WebSocket.
type tailConn struct {
	t    testing.TB
	conn *websocket.Conn
}

func (g *gatewayT) tail(grantID, token string) *tailConn {
	g.t.Helper()
	u := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + grantID + "/tail"
	conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		g.t.Fatalf("tail on %s: %v (status %d)", g.url, err, code)
	}
	g.t.Cleanup(func() { conn.Close() })
	var first map[string]any
	if err := conn.ReadJSON(&first); err != nil || first["type"] != "subscribed" {
		g.t.Fatalf("first tail message = %v, %v; want subscribed", first, err)
	}
	return &tailConn{t: g.t, conn: conn}
}

// next reads messages until n entries arrived or the tail ended. It returns
// the entries, the end message (nil if none) and the close code (0 if open).
func (tc *tailConn) next(n int, timeout time.Duration) (entries []map[string]any, end map[string]any, code int) {
	tc.t.Helper()
	tc.conn.SetReadDeadline(time.Now().Add(timeout))
	for n <= 0 || len(entries) < n {
		_, data, err := tc.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return entries, end, ce.Code
			}
			tc.t.Fatalf("tail read: %v (entries %d, end %v)", err, len(entries), end)
		}
		var m struct {
			Type    string           `json:"type"`
			Entries []map[string]any `json:"entries"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			tc.t.Fatalf("tail message %q: %v", data, err)
		}
		switch m.Type {
		case "entries":
			entries = append(entries, m.Entries...)
		case "end":
			json.Unmarshal(data, &end)
		}
	}
	return entries, end, 0
}

// approvedGrant has alice request prod on a and bob approve on b.
func approvedGrant(t *testing.T, a, b *gatewayT, alice, bob, duration string) string {
	t.Helper()
	var req requestJSON
	if code := a.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "prod",
		"duration": duration, "reason": "INC-77 checkout errors"}, &req); code != http.StatusCreated || req.State != "pending" {
		t.Fatalf("request on A: %d %+v", code, req)
	}
	var inbox struct {
		Items []requestJSON `json:"items"`
	}
	if code := b.call("GET", "/api/v1/requests?state=pending", bob, nil, &inbox); code != 200 || len(inbox.Items) == 0 || inbox.Items[0].ID != req.ID {
		t.Fatalf("bob's inbox on B: %d %+v, want the request made on A", code, inbox)
	}
	var approved requestJSON
	if code := b.call("POST", "/api/v1/requests/"+req.ID+"/approve", bob, map[string]string{"comment": "go"}, &approved); code != 200 || approved.Grant == nil {
		t.Fatalf("approve on B: %d %+v", code, approved)
	}
	var seen requestJSON
	if code := a.call("GET", "/api/v1/requests/"+req.ID, alice, nil, &seen); code != 200 || seen.State != "approved" || seen.Grant == nil {
		t.Fatalf("request on A after approval on B: %d %+v", code, seen)
	}
	return approved.Grant.ID
}

func TestTwoReplicasShareStateFeedRevocationAndAudit(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	a, b := startReplicas(t, url)
	alice, bob, carol := a.token("alice"), a.token("bob"), a.token("carol")

	grant := approvedGrant(t, a, b, alice, bob, "10m")
	onA, onB := a.tail(grant, alice), b.tail(grant, alice)

	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"one","level":"error"}`, `{"message":"two"}`); code != 200 {
		t.Fatalf("ingest on A: %d", code)
	}
	if code := b.ingest("checkout", "prod", replicaSourceToken, `{"message":"three"}`); code != 200 {
		t.Fatalf("ingest on B: %d", code)
	}
	for name, tc := range map[string]*tailConn{"A": onA, "B": onB} {
		es, end, _ := tc.next(3, 10*time.Second)
		if end != nil || len(es) != 3 {
			t.Fatalf("tail on %s: %d entries, end %v", name, len(es), end)
		}
		for i, want := range []string{"one", "two", "three"} {
			if es[i]["message"] != want || es[i]["seq"] != float64(i+1) {
				t.Errorf("tail on %s entry %d = %v, want %q with seq %d", name, i, es[i], want, i+1)
			}
		}
	}

	// Revoked on B: both tails end, each replica's own and the other's.
	if code := b.call("POST", "/api/v1/grants/"+grant+"/revoke", bob, map[string]string{"reason": "done"}, nil); code != 200 {
		t.Fatalf("revoke on B: %d", code)
	}
	for name, tc := range map[string]*tailConn{"A": onA, "B": onB} {
		_, end, code := tc.next(0, 5*time.Second)
		if end["reason"] != "revoked" || code != 4002 {
			t.Errorf("tail on %s after revoke on B: end %v, close %d; want revoked, 4002", name, end, code)
		}
	}

	// One audit chain: events from both replicas, gapless, verified on either.
	var trail struct {
		Items []auditJSON `json:"items"`
	}
	if code := a.call("GET", "/api/v1/audit?limit=1000", carol, nil, &trail); code != 200 {
		t.Fatalf("audit on A: %d", code)
	}
	for _, action := range []string{"request.created", "request.approved", "grant.issued", "stream.opened", "grant.revoked"} {
		if !hasAction(trail.Items, action) {
			t.Errorf("shared audit trail lacks %s", action)
		}
	}
	for i := 1; i < len(trail.Items); i++ {
		newer, older := trail.Items[i-1], trail.Items[i]
		if newer.Seq != older.Seq+1 || newer.PrevHash != older.Hash {
			t.Fatalf("chain broken between seq %d and %d", older.Seq, newer.Seq)
		}
	}
	for name, g := range map[string]*gatewayT{"A": a, "B": b} {
		var v struct {
			Verified bool           `json:"verified"`
			Report   map[string]any `json:"report"`
		}
		if code := g.call("GET", "/api/v1/audit/verify?fresh=true", carol, nil, &v); code != 200 || !v.Verified {
			t.Errorf("verify on %s: %d %+v", name, code, v)
		}
	}
	var out bytes.Buffer
	err := runAuditVerify(t.Context(), []string{"--redis", url}, func(string) string { return "" }, &out, io.Discard)
	if err != nil || !strings.Contains(out.String(), "OK: shared audit trail intact") {
		t.Errorf("loggate audit verify --redis: %v\n%s", err, out.String())
	}
	// A record removed behind the gateways' back is found.
	c := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(url, "redis://")})
	defer c.Close()
	if err := c.XDel(t.Context(), redisPrefix+"audit", "2-0").Err(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = runAuditVerify(t.Context(), []string{"--redis", url}, func(string) string { return "" }, &out, io.Discard)
	if err == nil || !strings.Contains(out.String(), "PROBLEM deleted") {
		t.Errorf("verify after deleting seq 2: %v\n%s", err, out.String())
	}
}

func TestReplicasFailClosedWhileRedisIsDownAndRecover(t *testing.T) {
	srv := redistest.Start(t)
	a, b := startReplicas(t, srv.URL())
	alice, bob := a.token("alice"), a.token("bob")
	grant := approvedGrant(t, a, b, alice, bob, "10m")
	tc := b.tail(grant, alice)
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"before"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if es, _, _ := tc.next(1, 10*time.Second); len(es) != 1 {
		t.Fatalf("entries before the outage: %v", es)
	}

	srv.Stop()
	_, end, code := tc.next(0, 10*time.Second)
	if end["reason"] != "backend_unavailable" || code != 4006 {
		t.Errorf("tail when Redis stops: end %v, close %d; want backend_unavailable, 4006", end, code)
	}
	for name, g := range map[string]*gatewayT{"A": a, "B": b} {
		if code := g.call("GET", "/readyz", "", nil, nil); code != http.StatusServiceUnavailable {
			t.Errorf("/readyz on %s with Redis down: %d, want 503", name, code)
		}
	}
	// (POST /requests answers 404 "unknown stream" today: gateway.knownStreams
	// drops the store error; see the report to the lead.)
	var e struct {
		Code string `json:"code"`
	}
	if code := b.call("GET", "/api/v1/requests?state=pending", bob, nil, &e); code != http.StatusServiceUnavailable || e.Code != "unavailable" {
		t.Errorf("list requests with Redis down: %d %+v, want 503", code, e)
	}
	if code := a.call("POST", "/api/v1/grants/"+grant+"/revoke", bob, map[string]string{"reason": "x"}, nil); code != http.StatusServiceUnavailable {
		t.Errorf("revoke with Redis down: %d, want 503", code)
	}
	if code := a.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "prod",
		"duration": "5m", "reason": "INC-78"}, nil); code != http.StatusServiceUnavailable {
		t.Errorf("new request with Redis down: %d, want 503", code)
	}
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"lost"}`); code != http.StatusServiceUnavailable {
		t.Errorf("ingest with Redis down: %d, want 503", code)
	}

	// Redis returns (with its append-only file): everything resumes, no restart.
	srv.Restart()
	for name, g := range map[string]*gatewayT{"A": a, "B": b} {
		if !within(15*time.Second, 50*time.Millisecond, func() bool { return g.call("GET", "/readyz", "", nil, nil) == 200 }) {
			t.Fatalf("/readyz on %s not 200 within 15s of Redis returning", name)
		}
	}
	tc = b.tail(grant, alice)
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"after"}`); code != 200 {
		t.Fatalf("ingest after recovery: %d", code)
	}
	es, _, _ := tc.next(1, 10*time.Second)
	if len(es) != 1 || es[0]["message"] != "after" || es[0]["seq"] != float64(2) {
		t.Errorf("after recovery: %v, want \"after\" with seq 2", es)
	}
	grant2 := approvedGrant(t, a, b, alice, bob, "5m")
	if grant2 == grant {
		t.Error("same grant twice")
	}
}

func TestRedisWithoutFsyncIsRefusedUnlessAccepted(t *testing.T) {
	srv := redistest.Start(t, "--appendfsync", "everysec")
	keys := sharedKeyFile(t)
	base := []string{"--dev", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--dev-demo-logs=false", "--redis", srv.URL()}
	err := runServe(t.Context(), base, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--session-key-file") {
		t.Errorf("serve --redis without shared session keys: %v, want a refusal naming --session-key-file", err)
	}
	args := append(base, "--session-key-file", keys)
	err = runServe(t.Context(), args, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--audit-signing-key-file") {
		t.Errorf("serve --redis without a shared audit key: %v, want a refusal naming --audit-signing-key-file", err)
	}
	auditKey := sharedAuditKeyFile(t)
	args = append(args, "--audit-signing-key-file", auditKey)
	err = runServe(t.Context(), args, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "appendfsync") || !strings.Contains(err.Error(), "--redis-accept-weak-durability") {
		t.Fatalf("serve with appendfsync everysec: %v, want a refusal naming appendfsync and the flag", err)
	}

	g := startGateway(t, "--redis", srv.URL(), "--redis-accept-weak-durability", "--session-key-file", keys,
		"--audit-signing-key-file", auditKey)
	carol := g.token("carol")
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	if code := g.call("GET", "/readyz", "", nil, &ready); code != 200 || !ready.Ready || !strings.Contains(ready.Checks["redis_durability"], "weak") {
		t.Errorf("/readyz with weak durability accepted: %d %+v, want ready with a redis_durability note", code, ready)
	}
	var trail struct {
		Items []auditJSON `json:"items"`
	}
	if code := g.call("GET", "/api/v1/audit?action=config.weak_durability", carol, nil, &trail); code != 200 || len(trail.Items) != 1 {
		t.Fatalf("audit config.weak_durability: %d %+v, want one event", code, trail.Items)
	}
	if d, _ := trail.Items[0].Details["check"].(string); !strings.Contains(d, "appendfsync=everysec") {
		t.Errorf("weak durability event details = %v", trail.Items[0].Details)
	}
}

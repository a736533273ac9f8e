package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// Debug on demand, end to end: the real gateway (runServe) and a real
// service process (testdata/debugsvc, built here) that logs through
// gateway/sdk/slogship.

const debugSourceToken = "lgs_debug_e2e_token_0123456789abcdef"

// buildDebugService builds testdata/debugsvc into a temporary directory.
func buildDebugService(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "debugsvc")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/debugsvc").CombinedOutput()
	if err != nil {
		t.Fatalf("go build debugsvc: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer is a bytes.Buffer safe for a process writer and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type serviceProc struct {
	cmd            *exec.Cmd
	stdout, stderr *lockedBuffer
}

// startDebugService runs the service against loggateURL until the test ends.
func startDebugService(t testing.TB, bin, loggateURL, token string) *serviceProc {
	t.Helper()
	p := &serviceProc{cmd: exec.Command(bin), stdout: &lockedBuffer{}, stderr: &lockedBuffer{}}
	p.cmd.Env = append(os.Environ(), "LOGGATE_URL="+loggateURL, "LOGGATE_TOKEN="+token,
		"SERVICE=checkout", "ENV=staging")
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("service stderr:\n%s", tailOf(p.stderr.String(), 4000))
		}
	})
	return p
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// askGrant requests checkout/staging as the token's holder, with extra
// fields (level, scope), and returns the grant id.
func askGrant(t *testing.T, g *gatewayT, token, duration string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"service": "checkout", "env": "staging", "duration": duration, "reason": "debugging checkout"}
	for k, v := range extra {
		body[k] = v
	}
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", token, body, &req); code != http.StatusCreated || req.Grant == nil {
		t.Fatalf("request %v: %d %+v", body, code, req)
	}
	return req.Grant.ID
}

// watcherGrant is a debug grant scoped to an attribute no record has: its
// views see raised lines (which plain grants do not) but raise nothing.
var watcherGrant = map[string]any{"level": "debug", "scope": map[string]string{"watcher": "nobody"}}

// waitDebug reads the watcher until a debug line arrives; it returns it.
func waitDebug(t *testing.T, w *tailConn) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		es, _, code := w.next(1, time.Until(deadline))
		if code != 0 {
			t.Fatalf("watcher closed (%d) before a debug line", code)
		}
		for _, e := range es {
			if e["level"] == "debug" {
				return e
			}
		}
	}
	t.Fatal("no debug line within 20s")
	return nil
}

// waitNormal reads the watcher until it has seen k info lines in a row
// with no debug line between them: the service is back at its level.
// Every tick logs a debug line before its info line, so while debug is
// enabled (even for one tenant in two) no two info lines are adjacent.
func waitNormal(t *testing.T, w *tailConn, k int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	run := 0
	for time.Now().Before(deadline) {
		es, _, code := w.next(1, time.Until(deadline))
		if code != 0 {
			t.Fatalf("watcher closed (%d) while waiting for the normal level", code)
		}
		for _, e := range es {
			switch e["level"] {
			case "debug":
				run = 0
			case "info":
				if run++; run >= k {
					return
				}
			}
		}
	}
	t.Fatalf("debug lines still arriving after 20s")
}

func attr(e map[string]any, k string) string {
	as, _ := e["attributes"].(map[string]any)
	s, _ := as[k].(string)
	return s
}

// TestDebugOnDemandWithARealService walks the whole story: raised on view;
// lowered on close, revoke, expiry and gateway restart; scoped by tenant;
// the service re-syncs after reconnecting.
func TestDebugOnDemandWithARealService(t *testing.T) {
	bin := buildDebugService(t)
	data, addr := t.TempDir(), freeAddr(t)
	args := []string{"--listen", addr, "--dev-source-token", debugSourceToken}
	g := startGatewayData(t, data, args...)
	startDebugService(t, bin, g.url, debugSourceToken)
	// Every level change below is audited with how many instances were
	// connected and acknowledged it; the watcher's own is the first, so the
	// service must hold its control connection before the watcher opens.
	eventually(t, "the service's level control connection", 20*time.Second, func() bool {
		return scrape(t, g.url)["loggate_control_connections_open"] >= 1
	})
	alice, bob := g.token("alice"), g.token("bob")

	w := g.tail(askGrant(t, g, alice, "1h", watcherGrant), alice)
	waitNormal(t, w, 5)

	t.Run("a plain grant does not see raised lines", func(t *testing.T) {
		plain := g.tail(askGrant(t, g, alice, "10m", nil), alice)
		v := g.tail(askGrant(t, g, alice, "10m", map[string]any{"level": "debug"}), alice)
		seq := waitDebug(t, v)["seq"].(float64)
		for {
			es, _, code := plain.next(1, 10*time.Second)
			if code != 0 {
				t.Fatalf("plain view closed (%d)", code)
			}
			for _, e := range es {
				if e["level"] == "debug" {
					t.Fatalf("plain grant got a raised line: %v", e)
				}
			}
			if es[len(es)-1]["seq"].(float64) > seq {
				break
			}
		}
		v.conn.Close()
		plain.conn.Close()
		waitNormal(t, w, 5)
	})

	t.Run("raised while a view is open, lowered when it closes", func(t *testing.T) {
		v := g.tail(askGrant(t, g, alice, "10m", map[string]any{"level": "debug"}), alice)
		e := waitDebug(t, w)
		if e["message"] != "debug tick" {
			t.Errorf("debug line %v", e)
		}
		v.conn.Close()
		waitNormal(t, w, 5)
	})

	t.Run("scoped to one tenant", func(t *testing.T) {
		v := g.tail(askGrant(t, g, alice, "10m", map[string]any{"level": "debug", "scope": map[string]string{"tenant": "acme"}}), alice)
		var debug []map[string]any
		for len(debug) < 6 {
			debug = append(debug, waitDebug(t, w))
		}
		for _, e := range debug {
			if attr(e, "tenant") != "acme" {
				t.Errorf("debug line for tenant %q, want acme only: %v", attr(e, "tenant"), e)
			}
		}
		v.conn.Close()
		waitNormal(t, w, 5)
	})

	t.Run("lowered on revoke", func(t *testing.T) {
		id := askGrant(t, g, alice, "10m", map[string]any{"level": "debug"})
		v := g.tail(id, alice)
		waitDebug(t, w)
		if code := g.call("POST", "/api/v1/grants/"+id+"/revoke", bob, map[string]string{"reason": "seen enough"}, nil); code != http.StatusOK {
			t.Fatalf("revoke: %d", code)
		}
		if _, _, code := v.next(0, 10*time.Second); code != 4002 {
			t.Errorf("debug view closed with %d, want 4002", code)
		}
		waitNormal(t, w, 5)
	})

	t.Run("lowered on expiry", func(t *testing.T) {
		v := g.tail(askGrant(t, g, alice, "3s", map[string]any{"level": "debug"}), alice)
		waitDebug(t, w)
		if _, _, code := v.next(0, 15*time.Second); code != 4001 {
			t.Errorf("debug view closed with %d, want 4001", code)
		}
		waitNormal(t, w, 5)
	})

	t.Run("audited with acknowledgements", func(t *testing.T) {
		carol := g.token("carol")
		for _, action := range []string{"stream.debug_enabled", "stream.debug_disabled"} {
			var page struct {
				Items []struct {
					Details map[string]any `json:"details"`
				} `json:"items"`
			}
			if code := g.call("GET", "/api/v1/audit?action="+action, carol, nil, &page); code != http.StatusOK || len(page.Items) < 4 {
				t.Fatalf("%s: status %d, %d events; want at least 4", action, code, len(page.Items))
			}
			for _, it := range page.Items {
				if fmt.Sprint(it.Details["instances_acknowledged"]) != "1" || fmt.Sprint(it.Details["instances_connected"]) != "1" {
					t.Errorf("%s details %v: want 1 of 1 instances acknowledged", action, it.Details)
				}
			}
		}
	})

	t.Run("lowered on gateway restart; re-synced after reconnect", func(t *testing.T) {
		id := askGrant(t, g, alice, "30m", map[string]any{"level": "debug"})
		g.tail(id, alice)
		waitDebug(t, w)
		g.stop()
		g2 := startGatewayData(t, data, args...)
		alice2 := g2.token("alice")
		w2 := g2.tail(askGrant(t, g2, alice2, "1h", watcherGrant), alice2)
		waitNormal(t, w2, 5)
		// The debug grant outlived the restart: a new view raises the
		// level again once the service has reconnected.
		g2.tail(id, alice2)
		waitDebug(t, w2)
	})
}

// TestServiceWithoutLoggate: a service that cannot reach loggate logs
// locally at its normal level and keeps running.
func TestServiceWithoutLoggate(t *testing.T) {
	bin := buildDebugService(t)
	p := startDebugService(t, bin, "http://"+freeAddr(t), debugSourceToken)
	if !within(20*time.Second, 50*time.Millisecond, func() bool {
		if strings.Count(p.stdout.String(), "info tick") >= 20 {
			return true
		}
		if p.cmd.ProcessState != nil {
			t.Fatalf("service exited: %v", p.cmd.ProcessState)
		}
		return false
	}) {
		t.Fatalf("service wrote %q; want 20 info lines", tailOf(p.stdout.String(), 500))
	}
	if out := p.stdout.String(); strings.Contains(out, "level=DEBUG") {
		t.Errorf("local output has debug lines without loggate:\n%s", tailOf(out, 500))
	}
	if !strings.Contains(p.stderr.String(), "loggate") {
		t.Errorf("service stderr %q: want the library to say loggate is unreachable", tailOf(p.stderr.String(), 500))
	}
}

// TestDebugAcrossReplicas: a view on replica B raises the level of a
// service connected to replica A (through Redis), and closing it lowers it.
func TestDebugAcrossReplicas(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	bin := buildDebugService(t)
	a, b := startReplicas(t, url)
	startDebugService(t, bin, a.url, replicaSourceToken)
	alice := a.token("alice")
	w := a.tail(askGrant(t, a, alice, "1h", watcherGrant), alice)
	waitNormal(t, w, 5)

	v := b.tail(askGrant(t, b, alice, "10m", map[string]any{"level": "debug"}), alice)
	waitDebug(t, w)
	v.conn.Close()
	waitNormal(t, w, 5)

	// Replica B stops with a debug view open: its views end with it.
	b.tail(askGrant(t, b, alice, "10m", map[string]any{"level": "debug"}), alice)
	waitDebug(t, w)
	b.stop()
	waitNormal(t, w, 5)
}

// TestDemoServiceFollowsDebugViews: serve --dev's demo checkout service
// ships debug lines while a debug view of checkout/staging is open.
func TestDemoServiceFollowsDebugViews(t *testing.T) {
	g := startGateway(t, "--dev-demo-logs=true")
	alice := g.token("alice")
	v := g.tail(askGrant(t, g, alice, "10m", map[string]any{"level": "debug"}), alice)
	e := waitDebug(t, v)
	if e["service"] != "checkout" || e["env"] != "staging" || attr(e, "tenant") == "" {
		t.Errorf("debug line %v: want checkout/staging with a tenant", e)
	}
}

// TestCLIRequestRaisesLevel: loggate request --raise-level/--scope asks for
// a debug grant; a bad scope is a usage error.
func TestCLIRequestRaisesLevel(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))
	alice.mustRun("request", "checkout/staging", "--for", "10m", "--reason", "acme carts", "--raise-level", "debug", "--scope", "tenant=acme")
	var grants struct {
		Items []struct {
			Level string            `json:"level"`
			Scope map[string]string `json:"scope"`
		} `json:"items"`
	}
	if code := g.call("GET", "/api/v1/grants?state=active", g.token("alice"), nil, &grants); code != http.StatusOK ||
		len(grants.Items) != 1 || grants.Items[0].Level != "debug" || grants.Items[0].Scope["tenant"] != "acme" {
		t.Fatalf("grants: %d %+v, want one debug grant scoped to tenant=acme", code, grants)
	}
	if _, errOut, code := alice.run("request", "checkout/staging", "--for", "10m", "--reason", "x", "--raise-level", "debug", "--scope", "acme"); code != 2 {
		t.Errorf("bad --scope: exit %d (%s), want 2", code, errOut)
	}
	if _, errOut, code := alice.run("request", "checkout/staging", "--for", "10m", "--reason", "x", "--raise-level", "loud"); code == 0 || !strings.Contains(errOut, "level must be") {
		t.Errorf("bad --raise-level: exit %d (%s), want the server's 400 message", code, errOut)
	}
}

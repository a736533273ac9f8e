package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/audit"
)

// TestRevokeClosesLiveTail: every live tail on a grant ends with close code
// 4002 when it is revoked, and a reconnect is refused.
func TestRevokeClosesLiveTail(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "30m")
	var conns []*websocket.Conn
	for range 2 { // two tabs on the same grant
		conn, _, err := h.dialTail("alice", g.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	start := time.Now()
	if code := h.call("dave", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "incident over"}, nil); code != http.StatusOK {
		t.Fatalf("revoke: status %d", code)
	}
	for i, conn := range conns {
		ce := closeOf(t, conn)
		if ce.Code != CloseRevoked || ce.Text != "grant revoked" {
			t.Errorf("tail %d closed with %d %q, want %d %q", i, ce.Code, ce.Text, CloseRevoked, "grant revoked")
		}
	}
	t.Logf("revoke call to both close frames: %s", time.Since(start))
	if _, resp, err := h.dialTail("alice", g.ID); err == nil || statusOf(resp) != http.StatusForbidden {
		t.Errorf("reconnect after revoke: %v (status %v), want 403", err, statusOf(resp))
	}
	// stream.closed is written by the tail goroutines as they end.
	closed, ok := h.eventsWithin(audit.Query{Action: "stream.closed", GrantID: g.ID}, 5*time.Second, 20*time.Millisecond,
		func(evs []audit.Event) bool { return len(evs) == 2 })
	if !ok {
		t.Fatalf("stream.closed events = %d, want 2", len(closed))
	}
	if closed[0].Reason != "revoked" {
		t.Errorf("stream.closed reason %q, want revoked", closed[0].Reason)
	}
}

// TestExpiryClosesLiveTail: the server ends a tail at the grant's end on
// its own timer, whatever the client does.
func TestExpiryClosesLiveTail(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "1s")
	conn, _, err := h.dialTail("alice", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ce := closeOf(t, conn)
	if ce.Code != CloseExpired {
		t.Errorf("close code %d %q, want %d", ce.Code, ce.Text, CloseExpired)
	}
	if _, resp, err := h.dialTail("alice", g.ID); err == nil || statusOf(resp) != http.StatusForbidden {
		t.Errorf("reconnect after expiry: %v (status %v), want 403", err, statusOf(resp))
	}
}

// TestSweepExpiryClosesLiveTail: when the records say a grant ended (the
// sweep, possibly on another replica), live tails end with 4001 too.
func TestSweepExpiryClosesLiveTail(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "10m")
	conn, _, err := h.dialTail("alice", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h.clock.Advance(11 * time.Minute)
	h.srv.sweep(context.Background())
	if ce := closeOf(t, conn); ce.Code != CloseExpired {
		t.Errorf("close code %d %q, want %d", ce.Code, ce.Text, CloseExpired)
	}
}

func TestTailRefusals(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "10m")
	if _, resp, err := h.dialTail("gina", g.ID); err == nil || statusOf(resp) != http.StatusForbidden {
		t.Errorf("someone else's grant: %v (status %v), want 403", err, statusOf(resp))
	}
	if _, resp, err := h.dialTail("alice", "grt_nosuchgrant"); err == nil || statusOf(resp) != http.StatusNotFound {
		t.Errorf("no such grant: %v (status %v), want 404", err, statusOf(resp))
	}
}

// BenchmarkRevokeToClose measures the time from the revoke call to the
// close frame at the viewer, over real HTTP and WebSocket on loopback.
func BenchmarkRevokeToClose(b *testing.B) {
	h := newHarness(b)
	h.token("alice")
	h.token("dave")
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g := h.grantFor("alice", "30m")
		conn, _, err := h.dialTail("alice", g.ID)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		if code := h.call("dave", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "bench"}, nil); code != http.StatusOK {
			b.Fatalf("revoke: %d", code)
		}
		ce := closeOf(b, conn)
		d := time.Since(start)
		b.StopTimer()
		if ce.Code != CloseRevoked {
			b.Fatalf("close code %d", ce.Code)
		}
		lat = append(lat, d)
		conn.Close()
		b.StartTimer()
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// The close reason names the cause for the viewer too (the end message).
func TestRevokeTellsTheViewerWhy(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "30m")
	conn, _, err := h.dialTail("alice", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h.call("carol", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "security review"}, nil)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatalf("no end message before the close: %v", err)
		}
		if m["type"] == "end" {
			if m["reason"] != "revoked" || !strings.Contains(m["message"].(string), "security review") {
				t.Errorf("end message = %v, want reason revoked with the revoker's reason", m)
			}
			return
		}
	}
}

package gateway

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/cluster"
)

// TestControlResyncIsAudited: a replica that finds control messages were
// trimmed before it read them (cluster.ErrTrimmed, as Control.Fresh
// reports it) ends its tails with 4006 and records control.resync (phase
// stale: since when, how many tails it ended, its replica id), and records
// it again (phase recovered) once it is fresh. A plain staleness, with
// nothing lost, ends tails but records nothing; a repeated report of the
// same trim records nothing more.
func TestControlResyncIsAudited(t *testing.T) {
	h := newHarnessWith(t, func(c *Config) { c.ReplicaID = "replica-b" })
	g := h.grantFor("alice", "30m")
	resyncs := func() []audit.Event { // oldest first
		evs := h.events(audit.Query{Action: "control.resync"})
		slices.Reverse(evs)
		return evs
	}
	open := func(n int) []*websocket.Conn {
		t.Helper()
		var conns []*websocket.Conn
		for range n {
			conn, _, err := h.dialTail("alice", g.ID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			conns = append(conns, conn)
		}
		return conns
	}
	ended := func(conns []*websocket.Conn) {
		t.Helper()
		for i, conn := range conns {
			if ce := closeOf(t, conn); ce.Code != api.CloseUnavailable {
				t.Errorf("tail %d closed with %d %q, want %d", i, ce.Code, ce.Text, api.CloseUnavailable)
			}
		}
	}
	cut := fmt.Errorf("%w for 3s (bound 2s)", cluster.ErrStale)
	trimmed := fmt.Errorf("%w: %w", cluster.ErrStale, cluster.ErrTrimmed)
	h.srv.SetControlStale(nil)

	// A cut with nothing lost: tails end, nothing to resync.
	conns := open(1)
	h.srv.SetControlStale(cut)
	ended(conns)
	h.srv.SetControlStale(nil)
	if evs := resyncs(); len(evs) != 0 {
		t.Fatalf("control.resync after a cut with nothing lost: %+v", evs)
	}

	check := func(ev audit.Event, phase string, outcome string, tails int) {
		t.Helper()
		d := ev.Details
		if ev.Outcome != outcome || d["phase"] != phase || d["replica"] != "replica-b" || d["cause"] != "trimmed" ||
			fmt.Sprint(d["tails_ended"]) != fmt.Sprint(tails) || ev.Actor.Kind != audit.ActorSystem {
			t.Errorf("control.resync = outcome %q actor %q details %v, want %s, %s, replica-b, trimmed, %d tails",
				ev.Outcome, ev.Actor.Kind, d, outcome, phase, tails)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d["stale_since"])); err != nil {
			t.Errorf("stale_since %v: %v", d["stale_since"], err)
		}
	}

	// A cut (two tails end), then the trim found when the link is back.
	conns = open(2)
	h.srv.SetControlStale(cut)
	ended(conns)
	cutAt := h.clock.Now()
	h.clock.Advance(3 * time.Second)
	h.srv.SetControlStale(trimmed)
	h.srv.SetControlStale(trimmed) // Fresh reports it twice
	evs := resyncs()
	if len(evs) != 1 {
		t.Fatalf("control.resync events after the trim = %d, want 1", len(evs))
	}
	check(evs[0], "stale", audit.OutcomeError, 2)
	if since, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(evs[0].Details["stale_since"])); since.After(cutAt) {
		t.Errorf("stale_since %v is after the cut began (%v)", since, cutAt)
	}
	if _, resp, err := h.dialTail("alice", g.ID); err == nil || statusOf(resp) != 503 {
		t.Errorf("tail while stale: %v (status %v), want 503", err, statusOf(resp))
	}
	h.clock.Advance(2 * time.Second)
	h.srv.SetControlStale(nil)
	evs = resyncs()
	if len(evs) != 2 {
		t.Fatalf("control.resync events after recovery = %d, want 2", len(evs))
	}
	check(evs[1], "recovered", audit.OutcomeSuccess, 2)
	if ms, err := strconv.ParseInt(fmt.Sprint(evs[1].Details["stale_ms"]), 10, 64); err != nil || ms < 5000 {
		t.Errorf("stale_ms = %v, want at least the 5 s the clock moved", evs[1].Details["stale_ms"])
	}

	// The trim found at once (no cut before it): its own tail ends.
	conns = open(1)
	h.srv.SetControlStale(trimmed)
	ended(conns)
	h.srv.SetControlStale(nil)
	evs = resyncs()
	if len(evs) != 4 {
		t.Fatalf("control.resync events = %d, want 4", len(evs))
	}
	check(evs[2], "stale", audit.OutcomeError, 1)
	check(evs[3], "recovered", audit.OutcomeSuccess, 1)
}

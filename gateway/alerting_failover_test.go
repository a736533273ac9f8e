package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// newReplicaAlertHarness is a gateway whose engine is one replica of a
// cluster sharing client (a short, real lease) and keeping alerts in
// Redis.
func newReplicaAlertHarness(t *testing.T, rules string, kept *alert.RedisStore, sh alert.Shared) *alertHarness {
	t.Helper()
	set, err := alert.Parse("alerts.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	var e *alert.Engine
	ah := newAlertHarnessWith(t, rules, func(c *Config) {
		sh.Store = kept
		e = alert.NewEngine(alert.EngineConfig{Now: c.Now, Shared: &sh})
		e.SetRules(set)
		c.Alerts, c.AlertStore = e, kept
	})
	e.SetSink(ah.srv)
	ah.engine = e
	return ah
}

// TestAlertLeaderFailoverOneFiredOneResolved: gateway A leads and fires;
// A stops; gateway B takes the lease over and carries on with A's alert:
// the same id and start, still firing while lines come, one alert.fired
// and, when the lines stop, one alert.resolved for the cluster.
func TestAlertLeaderFailoverOneFiredOneResolved(t *testing.T) {
	rs := redistest.Start(t)
	c, prefix := rs.Client(), redistest.Prefix(t)
	kept := alert.NewRedisStore(c, prefix)
	const rules = `- {name: checkout-payment-errors, service: checkout, env: staging, level: error, message: payment failed, threshold: 3, window: 1m}`
	a := newReplicaAlertHarness(t, rules, kept, alert.Shared{Client: c, Prefix: prefix, ReplicaID: "a", Lease: 2 * time.Second})
	b := newReplicaAlertHarness(t, rules, kept, alert.Shared{Client: c, Prefix: prefix, ReplicaID: "b", Lease: 2 * time.Second})
	advance := func(d time.Duration) { a.clock.Advance(d); b.clock.Advance(d) }
	count := func(action string) int {
		return len(a.events(audit.Query{Action: action})) + len(b.events(audit.Query{Action: action}))
	}
	ctx := context.Background()
	line := `{"level":"error","message":"payment failed"}`

	a.ingest(line, line, line)
	a.engine.Tick(ctx)
	b.engine.Tick(ctx)
	if !a.engine.Leading() || count("alert.fired") != 1 {
		t.Fatalf("A leading %v, alert.fired %d; want A to lead and fire", a.engine.Leading(), count("alert.fired"))
	}
	_, items := a.alerts("carol")
	if len(items) != 1 || items[0].State != alert.StateFiring {
		t.Fatalf("alerts on A = %+v, want one firing", items)
	}
	fired := items[0].Alert

	advance(20 * time.Second)
	b.ingest(line, line)
	b.engine.Tick(ctx)
	a.engine.Tick(ctx)

	// A stops ticking; B takes over once A's lease has expired.
	advance(20 * time.Second)
	b.ingest(line)
	deadline := time.Now().Add(20 * time.Second)
	for b.engine.Tick(ctx); !b.engine.Leading(); b.engine.Tick(ctx) {
		if time.Now().After(deadline) {
			t.Fatal("B never took the lease over")
		}
		time.Sleep(20 * time.Millisecond)
	}
	same := func(when string, wantState string) {
		t.Helper()
		_, items := b.alerts("carol")
		if len(items) != 1 {
			t.Fatalf("%s: alerts on B = %+v, want one", when, items)
		}
		got := items[0].Alert
		if got.ID != fired.ID || got.State != wantState || got.StartedAt == nil || !got.StartedAt.Equal(*fired.StartedAt) {
			t.Fatalf("%s: alert on B = %s %s since %v, want %s %s since %v", when, got.ID, got.State, got.StartedAt,
				fired.ID, wantState, fired.StartedAt)
		}
	}
	same("after the takeover", alert.StateFiring)
	// 70s after the first lines the window B took from A keeps it firing.
	advance(30 * time.Second)
	b.ingest(line)
	b.engine.Tick(ctx)
	same("lines still coming", alert.StateFiring)
	if n := count("alert.fired"); n != 1 {
		t.Errorf("alert.fired = %d across the replicas, want 1", n)
	}

	advance(2 * time.Minute)
	b.engine.Tick(ctx)
	b.engine.Tick(ctx)
	same("lines stopped", alert.StateResolved)
	if f, r := count("alert.fired"), count("alert.resolved"); f != 1 || r != 1 {
		t.Errorf("alert.fired %d, alert.resolved %d across the replicas; want one each", f, r)
	}
	if ev := b.events(audit.Query{Action: "alert.resolved"}); len(ev) != 1 || ev[0].Details["alert_id"] != fired.ID {
		t.Errorf("B's alert.resolved = %+v, want one for %s", ev, fired.ID)
	}
}

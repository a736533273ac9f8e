package alert

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/alert/alertmanagertest"
	"github.com/loggate/loggate/gateway/cluster/redistest"
	"github.com/loggate/loggate/gateway/logs"
)

// storeSink is a replica's sink as the gateway's: it keeps every change in
// the shared store and records it under the replica's name.
type storeSink struct {
	t     *testing.T
	name  string
	store *RedisStore
	log   *[]namedChange
}

type namedChange struct {
	replica string
	Change
}

func (s storeSink) AlertChanged(ctx context.Context, ch Change) {
	var err error
	if ch.Dropped {
		err = s.store.Delete(ctx, ch.Alert.ID)
	} else {
		err = s.store.Save(ctx, ch.Alert)
	}
	if err != nil {
		s.t.Error(err)
	}
	*s.log = append(*s.log, namedChange{s.name, ch})
}

type failoverCluster struct {
	t      *testing.T
	client *redis.Client
	prefix string
	store  *RedisStore
	clock  *fakeClock
	rules  *RuleSet
	log    []namedChange
}

func newFailoverCluster(t *testing.T, rules string) *failoverCluster {
	rs := redistest.Start(t)
	set, err := Parse("rules.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	fc := &failoverCluster{t: t, client: rs.Client(), prefix: redistest.Prefix(t),
		clock: &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}, rules: set}
	fc.store = NewRedisStore(fc.client, fc.prefix)
	return fc
}

// replica is one engine of the cluster. The lease is real (Redis expires
// it): short, so a stopped leader's lease runs out quickly, yet long
// enough that a busy machine does not lose it between two ticks of the
// test.
func (fc *failoverCluster) replica(id string) *Engine {
	e := NewEngine(EngineConfig{Now: fc.clock.Now, Sink: storeSink{fc.t, id, fc.store, &fc.log},
		Shared: &Shared{Client: fc.client, Prefix: fc.prefix, ReplicaID: id, Lease: 2 * time.Second, Store: fc.store}})
	e.SetRules(fc.rules)
	return e
}

// takeOver ticks e until it leads (the old leader's lease expired).
func (fc *failoverCluster) takeOver(e *Engine) {
	fc.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.Tick(context.Background()); !e.Leading(); e.Tick(context.Background()) {
		if time.Now().After(deadline) {
			fc.t.Fatal("the replica never took the lease over")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// take returns and forgets the changes so far, as replica:state.
func (fc *failoverCluster) take() []namedChange { l := fc.log; fc.log = nil; return l }

func names(l []namedChange) []string {
	var out []string
	for _, c := range l {
		out = append(out, c.replica+":"+states([]Change{c.Change})[0])
	}
	return out
}

func wantChanges(t *testing.T, got []namedChange, want ...string) {
	t.Helper()
	g := names(got)
	if len(g) != len(want) {
		t.Fatalf("changes = %v, want %v", g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("changes = %v, want %v", g, want)
		}
	}
}

// TestLeaderFailoverKeepsTheFiringAlert: leader A fires; A stops; B takes
// the lease over and carries on with the same alert (same id, same start),
// its window refilled from A's counts, so the alert stays firing while
// lines keep coming, is never reported fired again, and resolves once when
// they stop.
func TestLeaderFailoverKeepsTheFiringAlert(t *testing.T) {
	fc := newFailoverCluster(t, `- {name: errs, service: checkout, env: prod, message: payment failed, threshold: 3, window: 1m, group_by: [region]}`)
	ctx := context.Background()
	a, b := fc.replica("a"), fc.replica("b")
	line := logs.Entry{Service: "checkout", Env: "prod", Level: "error", Message: "payment failed", Attrs: map[string]string{"region": "eu"}}

	a.ObserveEntries([]logs.Entry{line, line, line})
	a.Tick(ctx) // a leads and fires
	b.Tick(ctx) // b follows
	if !a.Leading() || b.Leading() {
		t.Fatalf("leading: a %v, b %v", a.Leading(), b.Leading())
	}
	got := fc.take()
	wantChanges(t, got, "a:firing")
	fired := got[0].Alert

	// The lines go on, on B: forwarded to A, counted in A's window.
	fc.clock.Advance(20 * time.Second)
	b.ObserveEntries([]logs.Entry{line, line})
	b.Tick(ctx)
	a.Tick(ctx)
	wantChanges(t, fc.take())

	// A stops (no more ticks); B takes over once A's lease ran out.
	fc.clock.Advance(20 * time.Second)
	b.ObserveEntries([]logs.Entry{line})
	fc.takeOver(b)
	wantChanges(t, fc.take()) // not fired a second time
	act := b.Active()
	if len(act) != 1 || act[0].ID != fired.ID || act[0].State != StateFiring || !act[0].StartedAt.Equal(*fired.StartedAt) {
		t.Fatalf("B's active alerts = %+v, want A's %s firing since %v", act, fired.ID, fired.StartedAt)
	}

	// 70s after the first lines: only A's window (two lines at 20s) and B's
	// own lines keep the count at the threshold.
	fc.clock.Advance(30 * time.Second)
	b.ObserveEntries([]logs.Entry{line})
	b.Tick(ctx)
	got = fc.take()
	wantChanges(t, got, "b:resend") // A last sent it 70s ago
	if r := got[0].Alert; r.ID != fired.ID || !r.StartedAt.Equal(*fired.StartedAt) || r.Count != 4 {
		t.Errorf("resent alert = %s since %v count %d, want %s since %v count 4", r.ID, r.StartedAt, r.Count, fired.ID, fired.StartedAt)
	}

	// The lines stop: one resolve, of the same alert.
	fc.clock.Advance(2 * time.Minute)
	b.Tick(ctx)
	b.Tick(ctx)
	got = fc.take()
	wantChanges(t, got, "b:resolved")
	if got[0].Alert.ID != fired.ID || !got[0].Alert.StartedAt.Equal(*fired.StartedAt) {
		t.Errorf("resolved %s since %v, want %s since %v", got[0].Alert.ID, got[0].Alert.StartedAt, fired.ID, fired.StartedAt)
	}
	if act, err := fc.store.Active(ctx); err != nil || len(act) != 0 {
		t.Errorf("store active after resolve = %+v, %v", act, err)
	}
	if kept, err := fc.store.Get(ctx, fired.ID); err != nil || kept.State != StateResolved {
		t.Errorf("kept alert = %+v, %v; want resolved", kept, err)
	}
}

// TestNewLeaderTakesFiredAlertFromStore: A fires and dies before writing
// its state (Redis holds the state of the tick before). B takes the alert
// from the shared store instead of firing a second one, and a pending
// alert keeps its pending start, firing once after `for`.
func TestNewLeaderTakesFiredAlertFromStore(t *testing.T) {
	fc := newFailoverCluster(t, `
- {name: errs, service: checkout, env: prod, message: payment failed, threshold: 2, window: 1m}
- {name: slow, service: checkout, env: prod, message: slow, threshold: 1, window: 1m, for: 30s}
`)
	ctx := context.Background()
	a, b := fc.replica("a"), fc.replica("b")
	errLine := logs.Entry{Service: "checkout", Env: "prod", Level: "error", Message: "payment failed"}
	slowLine := logs.Entry{Service: "checkout", Env: "prod", Level: "warn", Message: "slow"}

	a.ObserveEntries([]logs.Entry{errLine, slowLine})
	a.Tick(ctx) // 1 < 2 errors; slow pending
	got := fc.take()
	wantChanges(t, got, "a:pending")
	pending := got[0].Alert
	before, err := fc.client.Get(ctx, fc.prefix+"alerts:state").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	a.ObserveEntries([]logs.Entry{errLine})
	a.Tick(ctx)
	got = fc.take()
	wantChanges(t, got, "a:firing")
	fired := got[0].Alert
	// A's last state write is lost with it.
	if err := fc.client.Set(ctx, fc.prefix+"alerts:state", before, 0).Err(); err != nil {
		t.Fatal(err)
	}

	b.ObserveEntries([]logs.Entry{errLine, errLine, slowLine})
	fc.takeOver(b)
	wantChanges(t, fc.take())
	byRule := map[string]Alert{}
	for _, x := range b.Active() {
		byRule[x.Rule] = x
	}
	if x := byRule["errs"]; x.ID != fired.ID || x.State != StateFiring || !x.StartedAt.Equal(*fired.StartedAt) {
		t.Errorf("errs on B = %+v, want %s firing since %v", x, fired.ID, fired.StartedAt)
	}
	if x := byRule["slow"]; x.ID != pending.ID || x.State != StatePending || !x.PendingSince.Equal(*pending.PendingSince) {
		t.Errorf("slow on B = %+v, want %s pending since %v", x, pending.ID, pending.PendingSince)
	}
	fc.clock.Advance(30 * time.Second)
	b.ObserveEntries([]logs.Entry{slowLine})
	b.Tick(ctx)
	got = fc.take()
	wantChanges(t, got, "b:firing")
	if got[0].Alert.ID != pending.ID || got[0].From != StatePending {
		t.Errorf("fired %s from %q, want the pending %s", got[0].Alert.ID, got[0].From, pending.ID)
	}
	fc.clock.Advance(2 * time.Minute)
	b.Tick(ctx)
	got = fc.take()
	wantChanges(t, got, "b:resolved", "b:resolved")
}

// TestLeaderFailoverOneAlertInAlertmanager: the same failover seen from a
// real Alertmanager, each replica delivering through the outbox they share
// in Redis: one alert, whose startsAt and loggate id stay A's after B took
// over (B refreshes it while lines come), resolved there once they stop.
func TestLeaderFailoverOneAlertInAlertmanager(t *testing.T) {
	base := alertmanagertest.Start(t)
	fc := newFailoverCluster(t, `- {name: failover-errors, service: checkout, env: prod, message: payment failed, threshold: 3, window: 1m}`)
	// The engines' clock starts in the past and never passes the real
	// one: Alertmanager judges endsAt by its own clock.
	fc.clock.t = time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	ctx := context.Background()
	replica := func(id string) (*Engine, context.CancelFunc) {
		am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{base}, Redis: fc.client, RedisPrefix: fc.prefix})
		if err != nil {
			t.Fatal(err)
		}
		e := fc.replica(id)
		rec := e.cfg.Sink
		e.SetSink(SinkFunc(func(ctx context.Context, ch Change) {
			rec.AlertChanged(ctx, ch)
			if !ch.Dropped {
				if err := am.Enqueue(ctx, ch.Alert); err != nil {
					t.Error(err)
				}
			}
		}))
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); am.Run(runCtx) }()
		stopAndWait := func() { stop(); <-done }
		t.Cleanup(stopAndWait)
		return e, stopAndWait
	}
	a, stopA := replica("a")
	b, _ := replica("b")
	line := logs.Entry{Service: "checkout", Env: "prod", Level: "error", Message: "payment failed"}

	a.ObserveEntries([]logs.Entry{line, line, line})
	a.Tick(ctx)
	b.Tick(ctx)
	wantChanges(t, fc.take(), "a:firing")
	var first alertmanagertest.Alert
	alertmanagertest.WaitFor(t, 15*time.Second, "the alert in Alertmanager", func() bool {
		got := alertmanagertest.Active(t, base, "failover-errors")
		if len(got) == 1 {
			first = got[0]
		}
		return len(got) == 1
	})

	fc.clock.Advance(20 * time.Second)
	b.ObserveEntries([]logs.Entry{line, line})
	b.Tick(ctx)
	a.Tick(ctx)
	stopA() // A's engine ticks no more and its sender stops
	fc.clock.Advance(20 * time.Second)
	b.ObserveEntries([]logs.Entry{line})
	fc.takeOver(b)
	fc.clock.Advance(30 * time.Second)
	b.ObserveEntries([]logs.Entry{line})
	b.Tick(ctx)
	wantChanges(t, fc.take(), "b:resend")
	alertmanagertest.WaitFor(t, 15*time.Second, "B's refresh in Alertmanager", func() bool {
		got := alertmanagertest.Active(t, base, "failover-errors")
		if len(got) != 1 {
			t.Fatalf("alerts in Alertmanager = %+v, want one", got)
		}
		if !got[0].StartsAt.Equal(first.StartsAt) || got[0].Annotations["loggate_alert_id"] != first.Annotations["loggate_alert_id"] {
			t.Fatalf("after the takeover Alertmanager has %s since %v, want %s since %v", got[0].Annotations["loggate_alert_id"],
				got[0].StartsAt, first.Annotations["loggate_alert_id"], first.StartsAt)
		}
		return got[0].Annotations["count"] == "4"
	})

	fc.clock.Advance(2 * time.Minute)
	b.Tick(ctx)
	wantChanges(t, fc.take(), "b:resolved")
	alertmanagertest.WaitFor(t, 15*time.Second, "the alert resolved in Alertmanager", func() bool {
		return len(alertmanagertest.Active(t, base, "failover-errors")) == 0
	})
}

// TestNewLeaderResolvesAlertsOfRemovedRules: an alert the store holds
// firing for a rule the new leader's rules no longer have is resolved once
// (as SetRules does), and a pending one is dropped.
func TestNewLeaderResolvesAlertsOfRemovedRules(t *testing.T) {
	fc := newFailoverCluster(t, `- {name: errs, service: checkout, env: prod, message: payment failed, threshold: 2, window: 1m}`)
	ctx := context.Background()
	now := fc.clock.Now()
	for _, a := range []Alert{
		{ID: "alt_gone", Rule: "gone", Kind: "log", State: StateFiring, PendingSince: &now, StartedAt: &now, UpdatedAt: now},
		{ID: "alt_wait", Rule: "gone-too", Kind: "log", State: StatePending, PendingSince: &now, UpdatedAt: now},
	} {
		if err := fc.store.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	b := fc.replica("b")
	b.Tick(ctx)
	got := fc.take()
	byID := map[string]namedChange{}
	for _, c := range got {
		byID[c.Alert.ID] = c
	}
	if len(got) != 2 || byID["alt_gone"].Alert.State != StateResolved || byID["alt_gone"].Alert.EndedAt == nil ||
		!byID["alt_wait"].Dropped {
		t.Errorf("changes = %v, want alt_gone resolved and alt_wait dropped", names(got))
	}
	b.Tick(ctx)
	wantChanges(t, fc.take())
	if act, err := fc.store.Active(ctx); err != nil || len(act) != 0 {
		t.Errorf("store active = %+v, %v; want none", act, err)
	}
}

package alert

import (
	"context"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
)

// fakeClock is a settable clock for the engine.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

type recorder struct{ changes []Change }

func (r *recorder) AlertChanged(_ context.Context, ch Change) { r.changes = append(r.changes, ch) }

// take returns and forgets the changes seen so far.
func (r *recorder) take() []Change { c := r.changes; r.changes = nil; return c }

func newTestEngine(t *testing.T, rules string) (*Engine, *fakeClock, *recorder) {
	t.Helper()
	rs, err := Parse("test.yaml", []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	rec := &recorder{}
	e := NewEngine(EngineConfig{Now: clock.Now, Sink: rec, ResendInterval: time.Minute})
	e.SetRules(rs)
	return e, clock, rec
}

func line(service, env, level, msg string, attrs map[string]string) logs.Entry {
	return logs.Entry{Service: service, Env: env, Level: level, Message: msg, Attrs: attrs}
}

func states(chs []Change) []string {
	var out []string
	for _, c := range chs {
		s := c.Alert.State
		if c.Dropped {
			s = "dropped"
		}
		if c.Resend {
			s = "resend"
		}
		out = append(out, s)
	}
	return out
}

func wantStates(t *testing.T, got []Change, want ...string) {
	t.Helper()
	g := states(got)
	if len(g) != len(want) {
		t.Fatalf("changes = %v, want %v", g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			t.Fatalf("changes = %v, want %v", g, want)
		}
	}
}

func TestWindowCountFiresAtThresholdAndResolvesWhenItSlidesOut(t *testing.T) {
	e, clock, rec := newTestEngine(t, `- {name: errs, service: checkout, env: prod, level: error, message: 'payment failed', threshold: 3, window: 1m}`)
	ctx := context.Background()
	ok := line("checkout", "prod", "error", "payment failed: card declined", nil)
	e.ObserveEntries([]logs.Entry{ok, ok, line("checkout", "prod", "info", "payment failed", nil),
		line("checkout", "staging", "error", "payment failed", nil), line("checkout", "prod", "error", "payment ok", nil)})
	e.Tick(ctx)
	wantStates(t, rec.take()) // 2 < 3: only two lines match level, stream and message
	clock.Advance(10 * time.Second)
	e.ObserveEntries([]logs.Entry{ok})
	e.Tick(ctx)
	got := rec.take()
	wantStates(t, got, StateFiring)
	a := got[0].Alert
	if a.Count != 3 || a.Service != "checkout" || a.Env != "prod" || a.StartedAt == nil || a.Annotations["count"] != "3" {
		t.Errorf("fired alert = %+v", a)
	}
	clock.Advance(55 * time.Second) // the first two lines leave the window
	e.Tick(ctx)
	got = rec.take()
	wantStates(t, got, StateResolved)
	if got[0].Alert.ID != a.ID || got[0].Alert.EndedAt == nil {
		t.Errorf("resolved alert = %+v, want id %s with ended_at", got[0].Alert, a.ID)
	}
}

func TestForKeepsAlertPendingFirst(t *testing.T) {
	e, clock, rec := newTestEngine(t, `- {name: slow, message: timeout, window: 5m, for: 2m}`)
	ctx := context.Background()
	e.ObserveEntries([]logs.Entry{line("api", "prod", "warn", "upstream timeout", nil)})
	e.Tick(ctx)
	wantStates(t, rec.take(), StatePending)
	clock.Advance(time.Minute)
	e.Tick(ctx)
	wantStates(t, rec.take())
	clock.Advance(time.Minute)
	e.Tick(ctx)
	wantStates(t, rec.take(), StateFiring)
	clock.Advance(time.Minute)
	e.Tick(ctx)
	wantStates(t, rec.take(), "resend")

	// A pending alert whose condition lapses before `for` is dropped.
	e2, clock2, rec2 := newTestEngine(t, `- {name: slow, message: timeout, window: 1m, for: 2m}`)
	e2.ObserveEntries([]logs.Entry{line("api", "prod", "warn", "timeout", nil)})
	e2.Tick(ctx)
	clock2.Advance(90 * time.Second)
	e2.Tick(ctx)
	wantStates(t, rec2.take(), StatePending, "dropped")
}

func TestGroupByMakesOneAlertPerGroup(t *testing.T) {
	e, _, rec := newTestEngine(t, `- {name: 5xx, attributes_match: {status: '^5'}, threshold: 2, window: 1m, group_by: [route]}`)
	e.ObserveEntries([]logs.Entry{
		line("api", "prod", "error", "x", map[string]string{"status": "500", "route": "/pay"}),
		line("api", "prod", "error", "x", map[string]string{"status": "503", "route": "/pay"}),
		line("api", "prod", "error", "x", map[string]string{"status": "502", "route": "/cart"}),
		line("api", "prod", "error", "x", map[string]string{"status": "200", "route": "/cart"}),
	})
	e.Tick(context.Background())
	got := rec.take()
	wantStates(t, got, StateFiring)
	if got[0].Alert.Group["route"] != "/pay" {
		t.Errorf("group = %v, want route=/pay", got[0].Alert.Group)
	}
}

func TestAbsenceFiresWhenNothingMatchedForTheWindow(t *testing.T) {
	e, clock, rec := newTestEngine(t, `- {name: nightly, service: batch, env: prod, message: 'job done', absent: true, window: 10m}`)
	ctx := context.Background()
	clock.Advance(5 * time.Minute)
	e.ObserveEntries([]logs.Entry{line("batch", "prod", "info", "job done in 3s", nil)})
	e.Tick(ctx)
	wantStates(t, rec.take())
	clock.Advance(9 * time.Minute)
	e.Tick(ctx)
	wantStates(t, rec.take()) // the line is still in the window
	clock.Advance(2 * time.Minute)
	e.Tick(ctx)
	got := rec.take()
	wantStates(t, got, StateFiring)
	if got[0].Alert.Service != "batch" || got[0].Alert.Count != 0 {
		t.Errorf("absence alert = %+v", got[0].Alert)
	}
	e.ObserveEntries([]logs.Entry{line("batch", "prod", "info", "job done", nil)})
	e.Tick(ctx)
	wantStates(t, rec.take(), StateResolved)
}

func TestAuditRuleGroupsBySubject(t *testing.T) {
	e, _, rec := newTestEngine(t, `- {name: brute, kind: audit, action: auth.failed, outcome: failure, threshold: 3, window: 5m, group_by: [actor]}`)
	fail := func(who string) audit.Event {
		return audit.Event{Action: "auth.failed", Outcome: "failure", Actor: audit.Actor{Kind: "user", Subject: who}}
	}
	for _, ev := range []audit.Event{fail("mallory"), fail("mallory"), fail("bob"), fail("mallory"),
		{Action: "auth.login", Outcome: "success", Actor: audit.Actor{Subject: "mallory"}},
		{Action: "alert.fired", Outcome: "failure"}} {
		e.ObserveEvent(ev)
	}
	e.Tick(context.Background())
	got := rec.take()
	wantStates(t, got, StateFiring)
	if got[0].Alert.Group["actor"] != "mallory" || got[0].Alert.Count != 3 {
		t.Errorf("alert = %+v", got[0].Alert)
	}
}

func TestSetRulesKeepsUnchangedRulesAndResolvesRemovedOnes(t *testing.T) {
	e, _, rec := newTestEngine(t, "- {name: a, message: boom, window: 1m}\n- {name: b, message: bang, window: 1m}")
	ctx := context.Background()
	e.ObserveEntries([]logs.Entry{line("s", "e", "info", "boom bang", nil)})
	e.Tick(ctx)
	wantStates(t, rec.take(), StateFiring, StateFiring)
	rs, err := Parse("new.yaml", []byte("- {name: a, message: boom, window: 1m}"))
	if err != nil {
		t.Fatal(err)
	}
	e.SetRules(rs)
	e.Tick(ctx)
	got := rec.take()
	wantStates(t, got, StateResolved)
	if got[0].Alert.Rule != "b" {
		t.Errorf("resolved %s, want b", got[0].Alert.Rule)
	}
	if act := e.Active(); len(act) != 1 || act[0].Rule != "a" {
		t.Errorf("active = %+v, want rule a still firing", act)
	}
}

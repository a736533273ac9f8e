package alert

import (
	"context"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/cluster/redistest"
	"github.com/loggate/loggate/gateway/logs"
)

// TestTwoReplicasOneAlert: two engines share one Redis; each sees part of
// the lines; together they cross the threshold and exactly one alert
// fires, and resolves, for the cluster.
func TestTwoReplicasOneAlert(t *testing.T) {
	rs := redistest.Start(t)
	prefix := redistest.Prefix(t)
	rules, err := Parse("rules.yaml", []byte(`- {name: errs, service: checkout, env: prod, message: payment failed, threshold: 3, window: 1m, group_by: [region]}`))
	if err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	newReplica := func(id string) (*Engine, *recorder) {
		rec := &recorder{}
		e := NewEngine(EngineConfig{Now: clock.Now, Sink: rec,
			Shared: &Shared{Client: rs.Client(), Prefix: prefix, ReplicaID: id}})
		e.SetRules(rules)
		return e, rec
	}
	a, recA := newReplica("a")
	b, recB := newReplica("b")
	ctx := context.Background()
	line := logs.Entry{Service: "checkout", Env: "prod", Level: "error", Message: "payment failed", Attrs: map[string]string{"region": "eu"}}

	a.ObserveEntries([]logs.Entry{line, line})
	b.ObserveEntries([]logs.Entry{line, line})
	a.Tick(ctx) // a takes the lease; it alone has 2 < 3
	b.Tick(ctx) // b follows: forwards its 2
	if got := append(recA.take(), recB.take()...); len(got) != 0 {
		t.Fatalf("changes before the counts met = %v", states(got))
	}
	a.Tick(ctx)
	got := recA.take()
	wantStates(t, got, StateFiring)
	if got[0].Alert.Count != 4 || got[0].Alert.Group["region"] != "eu" {
		t.Errorf("cluster alert = %+v, want count 4 for region eu", got[0].Alert)
	}
	b.ObserveEntries([]logs.Entry{line})
	b.Tick(ctx)
	a.Tick(ctx)
	wantStates(t, append(recA.take(), recB.take()...)) // still firing, no duplicate

	clock.Advance(2 * time.Minute)
	b.Tick(ctx)
	a.Tick(ctx)
	wantStates(t, recA.take(), StateResolved)
	wantStates(t, recB.take())
}

func TestRedisStoreKeepsAndLists(t *testing.T) {
	rs := redistest.Start(t)
	st := NewRedisStore(rs.Client(), redistest.Prefix(t))
	ctx := context.Background()
	now := time.Now()
	for i, state := range []string{StateFiring, StateResolved, StateFiring} {
		a := Alert{ID: "alt_" + string(rune('a'+i)), Rule: "r", State: state, UpdatedAt: now.Add(time.Duration(i) * time.Second)}
		if err := st.Save(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	all, err := st.List(ctx, "", 10)
	if err != nil || len(all) != 3 || all[0].ID != "alt_c" {
		t.Fatalf("list = %+v, %v", all, err)
	}
	if firing, _ := st.List(ctx, StateFiring, 10); len(firing) != 2 {
		t.Errorf("firing = %d, want 2", len(firing))
	}
	if _, err := st.Get(ctx, "alt_x"); err != ErrNotFound {
		t.Errorf("Get unknown = %v", err)
	}
	if err := st.Delete(ctx, "alt_a"); err != nil {
		t.Fatal(err)
	}
	if act, _ := st.Active(ctx); len(act) != 1 {
		t.Errorf("active = %d, want 1", len(act))
	}
}

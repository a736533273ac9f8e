package gateway

import (
	"testing"
	"time"
)

// TestLevelState: views become rules by stream and scope; the last view
// of a rule ending removes it; other replicas' views count until they go
// silent; expired views end on their own.
func TestLevelState(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	view := func(id, grant, level string, scope map[string]string) LevelView {
		return LevelView{ViewID: id, GrantID: grant, Service: "checkout", Env: "prod", Level: level, Scope: scope, ExpiresAt: t0.Add(time.Hour)}
	}
	all := func(string, string) bool { return true }
	rules := func(l *levelState) []LevelRule { _, rs, _ := l.current(all); return rs }
	kinds := func(cs []levelChange) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.kind)
		}
		return out
	}

	l := newLevelState()
	if got := kinds(l.open(view("v1", "g1", "debug", nil), t0)); len(got) != 1 || got[0] != levelEnabled {
		t.Fatalf("first view: changes %v, want one enabled", got)
	}
	if got := kinds(l.open(view("v2", "g1", "debug", nil), t0)); len(got) != 0 {
		t.Errorf("second view of the same grant: changes %v, want none", got)
	}
	l.open(view("v3", "g2", "debug", map[string]string{"tenant": "acme"}), t0)
	if rs := rules(l); len(rs) != 2 {
		t.Fatalf("rules %+v, want the whole service and tenant=acme", rs)
	}
	if got := kinds(l.close("v1", t0)); len(got) != 0 {
		t.Errorf("closing one of two views: changes %v, want none", got)
	}
	if got := kinds(l.close("v2", t0)); len(got) != 1 || got[0] != levelDisabled {
		t.Errorf("closing the last view: changes %v, want one disabled", got)
	}

	// trace and debug on one scope: the lower level wins.
	l.open(view("v4", "g4", "trace", map[string]string{"tenant": "acme"}), t0)
	if rs := rules(l); len(rs) != 1 || rs[0].Level != "trace" || len(rs[0].Grants) != 2 {
		t.Errorf("rules %+v, want one trace rule held by two grants", rs)
	}
	l.close("v4", t0)
	if rs := rules(l); len(rs) != 1 || rs[0].Level != "debug" {
		t.Errorf("rules %+v, want debug again", rs)
	}
	l.close("v3", t0)

	// Another replica's views count until it has been silent for levelStale.
	l.applyRemote(LevelSnapshot{Replica: "r2", Views: []LevelView{view("v9", "g9", "debug", nil)}}, t0)
	if rs := rules(l); len(rs) != 1 || rs[0].Grants[0] != "g9" {
		t.Fatalf("rules %+v, want the remote view's", rs)
	}
	if got := kinds(l.tick(t0.Add(levelStale - time.Second))); len(got) != 0 {
		t.Errorf("tick before stale: %v", got)
	}
	if got := kinds(l.tick(t0.Add(levelStale + time.Second))); len(got) != 1 || got[0] != levelDisabled {
		t.Errorf("tick after stale: changes %v, want disabled", got)
	}

	// A view past its grant's expiry ends on the next tick; revoking drops
	// every view of a grant at once.
	l.open(view("v5", "g5", "debug", nil), t0)
	if got := kinds(l.tick(t0.Add(2 * time.Hour))); len(got) != 1 || got[0] != levelDisabled {
		t.Errorf("tick after expiry: changes %v, want disabled", got)
	}
	l.open(view("v6", "g6", "debug", nil), t0)
	l.open(view("v7", "g6", "debug", nil), t0)
	if got := kinds(l.dropGrant("g6", t0)); len(got) != 1 || got[0] != levelDisabled || len(rules(l)) != 0 {
		t.Errorf("dropGrant: changes %v, rules %+v", got, rules(l))
	}
}

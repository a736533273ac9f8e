package cluster

import (
	"context"
	"slices"
	"testing"

	"github.com/loggate/loggate/gateway/audit"
)

func TestOpenViewsOnlyThisReplicas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mk := func(replica string) *Audit {
		a, err := NewAudit(AuditConfig{Client: e.client(t), Prefix: e.prefix, ReplicaID: replica})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	r1, r2, anon := mk("r1"), mk("r2"), mk("")
	view := func(action, outcome, id, replica string) {
		t.Helper()
		d := map[string]any{audit.DetailViewID: id}
		if replica != "" {
			d[DetailReplica] = replica
		}
		if _, err := r1.Append(ctx, audit.Event{Action: action, Outcome: outcome, Details: d,
			Actor: audit.Actor{Kind: audit.ActorUser, Subject: "alice"}, Target: audit.Target{GrantID: "g1"}}); err != nil {
			t.Fatal(err)
		}
	}
	view(audit.ActionStreamOpened, audit.OutcomeSuccess, "v1", "r1")
	view(audit.ActionStreamOpened, audit.OutcomeSuccess, "v2", "r2")
	view(audit.ActionStreamOpened, audit.OutcomeSuccess, "v3", "r1")
	view(audit.ActionStreamClosed, audit.OutcomeSuccess, "v3", "")
	view(audit.ActionStreamOpened, "denied", "v4", "r1")
	view(audit.ActionStreamOpened, audit.OutcomeSuccess, "v5", "")
	view(audit.ActionStreamOpened, audit.OutcomeSuccess, "v6", "r1")
	view("stream.progress", audit.OutcomeSuccess, "v6", "r1")

	tests := []struct {
		name string
		a    *Audit
		want []string
	}{
		{"replica r1 sees its unclosed views", r1, []string{"v1", "v6"}},
		{"replica r2 sees only its own", r2, []string{"v2"}},
		{"no replica id recovers nothing", anon, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := tt.a.OpenViews(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				id, _ := ev.Details[audit.DetailViewID].(string)
				got = append(got, id)
				if ev.Action != audit.ActionStreamOpened || ev.Seq == 0 || ev.Target.GrantID != "g1" {
					t.Errorf("view %s event %+v, want the full stream.opened", id, ev)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("OpenViews = %v, want %v", got, tt.want)
			}
		})
	}
}

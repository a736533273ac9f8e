package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/cluster"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// A replica's start-up closes the views its own last run left open, never
// a view live on another replica.
func TestReplicaRestartClosesOnlyItsOwnInterruptedViews(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	keys, auditKey := sharedKeyFile(t), sharedAuditKeyFile(t)
	common := []string{"--redis", url, "--dev-source-token", replicaSourceToken, "--session-key-file", keys,
		"--audit-signing-key-file", auditKey}
	a := startGateway(t, common...)
	bData := t.TempDir()
	bArgs := append(common, "--issuer", a.url+"/dev/oidc")
	b := startGatewayData(t, bData, bArgs...)
	alice, bob, carol := a.token("alice"), a.token("bob"), a.token("carol")
	grant := approvedGrant(t, a, b, alice, bob, "10m")
	onA := a.tail(grant, alice) // live on A throughout

	// A view B "was serving when it died": a stream.opened with B's
	// replica id and no stream.closed.
	idB, err := os.ReadFile(filepath.Join(bData, "replica-id"))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(url, "redis://")})
	defer rc.Close()
	w := trailWriter(t, rc, auditKey)
	if _, err := w.Append(t.Context(), audit.Event{Action: audit.ActionStreamOpened, Outcome: audit.OutcomeSuccess,
		Actor: audit.Actor{Kind: audit.ActorUser, Subject: "alice"}, Target: audit.Target{GrantID: grant, Service: "checkout", Env: "prod"},
		Details: map[string]any{audit.DetailViewID: "view_crashed_on_b", cluster.DetailReplica: strings.TrimSpace(string(idB))}}); err != nil {
		t.Fatal(err)
	}

	b.stop()
	startGatewayData(t, bData, bArgs...)

	var closed struct {
		Items []auditJSON `json:"items"`
	}
	if code := a.call("GET", "/api/v1/audit?action=stream.closed&grant="+grant, carol, nil, &closed); code != 200 {
		t.Fatalf("audit: %d", code)
	}
	var got []string
	for _, ev := range closed.Items {
		got = append(got, ev.Details["view_id"].(string)+":"+ev.Outcome)
	}
	if len(got) != 1 || got[0] != "view_crashed_on_b:interrupted" {
		t.Errorf("stream.closed after B restarted = %v, want only view_crashed_on_b:interrupted (A's live view stays open)", got)
	}
	if code := a.ingest("checkout", "prod", replicaSourceToken, `{"message":"still here"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if es, end, _ := onA.next(1, 10e9); len(es) != 1 || end != nil {
		t.Errorf("tail on A after B restarted: %d entries, end %v; want it still live", len(es), end)
	}
}

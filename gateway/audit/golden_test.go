package audit

import (
	"encoding/base64"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// TestGoldenVectors pins the wire format: canonical record bytes, chain
// hashes, leaf hashes, the tree root and the signed checkpoint (Ed25519 is
// deterministic) for fixed inputs. A change here breaks every existing
// trail's verification and must be a new SchemaVersion.
func TestGoldenVectors(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	evs := []Event{
		{ID: "evt_golden1", Schema: SchemaVersion, Time: when, Action: "auth.login",
			Actor:   Actor{Kind: ActorUser, Issuer: "https://idp.example", Subject: "u1", Email: "a@example.com", Groups: []string{"eng"}},
			Outcome: OutcomeSuccess, SourceAddr: "192.0.2.1:1234", UserAgent: "curl/8 <&>"},
		{ID: "evt_golden2", Schema: SchemaVersion, Time: when.Add(time.Second), Action: "grant.issued",
			Actor:   Actor{Kind: ActorSystem},
			Target:  Target{RequestID: "req_1", GrantID: "grt_1", Service: "checkout", Env: "prod"},
			Outcome: OutcomeSuccess, DecisionID: "dec-1", PolicyRevision: "rev-9",
			Details: map[string]any{"ttl_seconds": 900, "approvers": []string{"bob"}}},
	}
	var b strings.Builder
	var prev [32]byte
	var tree compactRange
	for i := range evs {
		tail, err := EncodeTail(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		rec := BuildRecord(int64(i+1), prev, tail)
		h := ChainHash(prev, rec)
		leaf := tlog.RecordHash(rec)
		tree.append(leaf)
		b.WriteString("record " + string(rec) + "\n")
		b.WriteString("hash " + hex.EncodeToString(h[:]) + "\n")
		b.WriteString("leaf " + base64.StdEncoding.EncodeToString(leaf[:]) + "\n")
		prev = h
	}
	cp, err := signCheckpoint(fuzzKey(t), DefaultOrigin, 2, tree.root(), when)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("verifier " + fuzzKey(t).verifier + "\n")
	b.WriteString(cp.Note)
	got := b.String()

	path := filepath.Join("testdata", "golden.txt")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("golden vectors changed:\ngot:\n%s\nwant:\n%s", got, want)
	}
}

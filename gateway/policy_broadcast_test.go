package gateway

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loggate/loggate/gateway/audit"
)

// TestPolicyChangeFromAnotherReplica: a control message saying another
// replica loaded a new revision makes this replica re-read its policy
// files and audit the reload; a message naming the revision it already
// runs changes nothing.
func TestPolicyChangeFromAnotherReplica(t *testing.T) {
	h := newHarness(t)
	before := h.policy.Revision()

	h.srv.ApplyControl(ControlEvent{Kind: ControlPolicy, Reason: before})
	if n := len(h.events(audit.Query{Action: "policy.reloaded"})); n != 0 {
		t.Fatalf("reload for the revision already in force: %d policy.reloaded events, want 0", n)
	}

	// The shared policy directory changed; this replica's watcher has not
	// seen it (it is not running here), another replica's has.
	path := filepath.Join(h.policyDir, "access.rego")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, "\n# changed on the shared volume\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	h.srv.ApplyControl(ControlEvent{Kind: ControlPolicy, Reason: "sha256:from-replica-a"})
	evs := h.events(audit.Query{Action: "policy.reloaded"})
	if len(evs) != 1 || evs[0].Details["old_revision"] != before || h.policy.Revision() == before {
		t.Fatalf("after a broadcast: events %+v, revision %s (was %s); want one policy.reloaded and a new revision",
			evs, h.policy.Revision(), before)
	}
}

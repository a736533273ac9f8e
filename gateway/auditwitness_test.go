package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/loggate/loggate/gateway/audit"
)

// The witness endpoints answer without credentials; a bad range is a 400
// whose message names the parameter.
func TestAuditConsistencyEndpoint(t *testing.T) {
	h := newHarness(t)
	var cp audit.Checkpoint
	if got := h.call("", "GET", "/api/v1/audit/checkpoint", nil, &cp); got != http.StatusOK || cp.Size < 1 || cp.KeyID == "" {
		t.Fatalf("GET checkpoint without a token: status %d, %+v", got, cp)
	}
	if !strings.HasPrefix(cp.KeyID, cp.Origin+"+") || len(cp.KeyID) != len(cp.Origin)+9 {
		t.Errorf("key_id %q, want <origin>+<8 hex>", cp.KeyID)
	}
	var keys struct {
		VerifierKeys []string `json:"verifier_keys"`
	}
	if got := h.call("", "GET", "/api/v1/audit/keys", nil, &keys); got != http.StatusOK || len(keys.VerifierKeys) != 1 ||
		!strings.HasPrefix(keys.VerifierKeys[0], cp.KeyID+"+") {
		t.Fatalf("GET keys: status %d, %v (key id %s)", got, keys.VerifierKeys, cp.KeyID)
	}
	var p audit.ConsistencyProof
	path := "/api/v1/audit/consistency?from=1&to=" + itoa(cp.Size)
	if got := h.call("", "GET", path, nil, &p); got != http.StatusOK {
		t.Fatalf("GET %s: status %d", path, got)
	}
	if err := audit.VerifyConsistency(p, keys.VerifierKeys...); err != nil {
		t.Errorf("served proof: %v", err)
	}
	for _, tc := range []struct{ query, param string }{
		{"", "from"}, {"to=1", "from"}, {"from=1", "to"}, {"from=x&to=1", "from"}, {"from=1&to=-1", "to"},
		{"from=1&to=1e3", "to"}, {"from=+1&to=1", "from"}, {"from=0&to=1", "from"}, {"from=2&to=1", "from"},
		{"from=1&to=99999", "to"}, {"from=1&to=99999999999999999999", "to"}, {"from=1&from=1&to=1", "from"},
	} {
		var out map[string]string
		got := h.call("", "GET", "/api/v1/audit/consistency?"+tc.query, nil, &out)
		msg := out["error"]
		if got != http.StatusBadRequest || !strings.HasPrefix(msg, tc.param) {
			t.Errorf("?%s: status %d, message %q; want 400 naming %q", tc.query, got, msg, tc.param)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A witness failure report needs a token, is recorded as
// audit.witness_failed with who sent it, and bad reports are 400s.
func TestWitnessFailureReport(t *testing.T) {
	h := newHarness(t)
	body := map[string]any{"kind": "fork", "message": "fork: the trail does not extend size 3",
		"trusted": map[string]any{"size": 3, "root_hash": strings.Repeat("A", 43) + "="}}
	if got := h.call("", "POST", "/api/v1/audit/witness-failures", body, nil); got != http.StatusUnauthorized {
		t.Errorf("without a token: status %d, want 401", got)
	}
	var out map[string]string
	if got := h.call("alice", "POST", "/api/v1/audit/witness-failures", body, &out); got != http.StatusCreated || out["event_id"] == "" {
		t.Fatalf("report: status %d, %v", got, out)
	}
	evs := h.events(audit.Query{Action: ActionWitnessFailed})
	if len(evs) != 1 || evs[0].Actor.Email == "" || evs[0].Details["kind"] != "fork" || evs[0].Outcome != audit.OutcomeFailure {
		t.Fatalf("recorded %+v", evs)
	}
	for _, bad := range []map[string]any{
		{"kind": "meh", "message": "x"},
		{"kind": "fork"},
		{"kind": "fork", "message": "x", "seen": map[string]any{"size": 1, "root_hash": "nope"}},
		{"kind": "fork", "message": "x", "seen": map[string]any{"size": -1, "root_hash": strings.Repeat("A", 43) + "="}},
		{"kind": "fork", "message": "x", "extra": 1},
	} {
		if got := h.call("alice", "POST", "/api/v1/audit/witness-failures", bad, nil); got != http.StatusBadRequest {
			t.Errorf("%v: status %d, want 400", bad, got)
		}
	}
}

// FuzzParseProofRange: any query string either parses to 1 <= from <= to
// or is a 400 naming from or to; never a panic.
func FuzzParseProofRange(f *testing.F) {
	for _, s := range []string{"from=1&to=2", "from=0&to=1", "from=&to=", "to=9&from=3", "from=1&to=99999999999999999999",
		"from=%00&to=1", "from=1&from=2&to=3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		from, to, err := parseProofRange(q)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest ||
				!(strings.HasPrefix(ae.Message, "from") || strings.HasPrefix(ae.Message, "to")) {
				t.Fatalf("%q: %v, want a 400 naming from or to", raw, err)
			}
			return
		}
		if from < 1 || from > to {
			t.Fatalf("%q: accepted from=%d to=%d", raw, from, to)
		}
	})
}

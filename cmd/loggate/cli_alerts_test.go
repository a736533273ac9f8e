package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

// TestCLIAlerts: the alerts commands against a real gateway whose rule
// fired on ingested lines: list (filtered, JSON that decodes strictly into
// api.Alert), show, the rules file, a refused --put that names the problem
// and leaves the rules alone, an accepted one, and the refusals' exit codes.
func TestCLIAlerts(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, []byte(e2eRules), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--alert-rules", rules)
	line := `{"level":"error","message":"payment failed: declined"}`
	if code := g.ingest("checkout", "staging", g.r.SourceTokens["checkout/staging"], line, line, line); code != http.StatusOK {
		t.Fatalf("ingest: %d", code)
	}
	carol := newCLI(t, g.url).as(g.token("carol"))
	var firing string
	eventually(t, "the alert firing in the CLI list", 15*time.Second, func() bool {
		firing = carol.mustRun("alerts", "--state", "firing")
		return strings.Contains(firing, "checkout-payment-errors")
	})
	if !strings.Contains(firing, "checkout/staging") || !strings.Contains(firing, "critical") {
		t.Errorf("alerts --state firing:\n%s", firing)
	}

	out := carol.mustRun("alerts", "--json")
	var al api.Alert
	dec := json.NewDecoder(bytes.NewReader([]byte(strings.SplitN(out, "\n", 2)[0])))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&al); err != nil || al.Rule != "checkout-payment-errors" || !strings.HasPrefix(al.ID, "alt_") {
		t.Fatalf("alerts --json first line does not decode into api.Alert (%v): %s", err, out)
	}
	show := carol.mustRun("alerts", "show", al.ID)
	for _, want := range []string{"Alert " + al.ID + ": checkout-payment-errors", "Stream:", "checkout/staging", "team=payments", "Link:", g.url} {
		if !strings.Contains(show, want) {
			t.Errorf("alerts show lacks %q:\n%s", want, show)
		}
	}
	if _, errOut, code := carol.run("alerts", "show", "alt_nope"); code != exitcode.Failure || !strings.Contains(errOut, "not found") {
		t.Errorf("alerts show alt_nope: exit %d, %s", code, errOut)
	}
	if _, errOut, code := carol.run("alerts", "--state", "bogus"); code != exitcode.Usage || !strings.Contains(errOut, "--state") {
		t.Errorf("alerts --state bogus: exit %d, %s", code, errOut)
	}
	alice := newCLI(t, g.url).as(g.token("alice"))
	if _, errOut, code := alice.run("alerts"); code != exitcode.Denied || !strings.Contains(errOut, "denied") {
		t.Errorf("alice alerts: exit %d, %s", code, errOut)
	}

	if got := carol.mustRun("alerts", "rules"); got != e2eRules {
		t.Errorf("alerts rules = %q, want the file", got)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("- name: x\n  window: forever\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := carol.run("alerts", "rules", "--put", bad); code != exitcode.Failure ||
		!strings.Contains(errOut, "refused "+bad) || !strings.Contains(errOut, "window") {
		t.Errorf("alerts rules --put bad: exit %d, %s", code, errOut)
	}
	if got := carol.mustRun("alerts", "rules"); got != e2eRules {
		t.Errorf("after a refused put, alerts rules = %q, want the old file", got)
	}
	good := filepath.Join(t.TempDir(), "good.yaml")
	newRules := strings.Replace(e2eRules, "threshold: 3", "threshold: 5", 1)
	if err := os.WriteFile(good, []byte(newRules), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := carol.mustRun("alerts", "rules", "--put", good); !strings.Contains(out, "1 rules (checkout-payment-errors)") {
		t.Errorf("alerts rules --put good: %s", out)
	}
	if got := carol.mustRun("alerts", "rules"); got != newRules {
		t.Errorf("after the put, alerts rules = %q", got)
	}
	if _, errOut, code := alice.run("alerts", "rules", "--put", good); code != exitcode.Denied {
		t.Errorf("alice alerts rules --put: exit %d, %s", code, errOut)
	}
}

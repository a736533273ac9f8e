package main

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

var updateCLIGolden = flag.Bool("update-cli-golden", false, "rewrite testdata/cli golden files")

// goldenNormalisers replace what changes between runs (ids, times, hashes,
// ports, policy revisions) with fixed words. Ids keep their length class so
// the aligned text tables still line up.
var goldenNormalisers = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`http://127\.0\.0\.1:\d+`), "http://SERVER"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "TIMESTAMP"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d`), "YYYY-MM-DD hh:mm:ss"},
	{regexp.MustCompile(`sha256:[0-9a-f]{64}`), "sha256:REVISION"},
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), "HASH"},
	{regexp.MustCompile(`"request_id":"[a-z0-9]{20}"`), `"request_id":"HTTP_REQUEST_ID_XXXXX"`},
	{regexp.MustCompile(`"(duration_ms|seconds)":\d+`), `"$1":N`},
	{regexp.MustCompile(`"(decision_id|request_decision_id)":"[^"]*"`), `"$1":"DECISION"`},
}

// goldenID matches generated ids ("req_...", "evt_...", "dec_..."); they are
// replaced by X's of the same length so aligned tables stay aligned.
var goldenID = regexp.MustCompile(`\b([a-z]{2,4})_([a-z0-9]{12,})\b`)

func normaliseGolden(s string) string {
	s = goldenID.ReplaceAllStringFunc(s, func(id string) string {
		prefix, rest, _ := strings.Cut(id, "_")
		return prefix + "_" + strings.Repeat("X", len(rest))
	})
	for _, n := range goldenNormalisers {
		s = n.re.ReplaceAllString(s, n.repl)
	}
	return s
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	got = normaliseGolden(got)
	p := filepath.Join("testdata", "cli", name)
	if *updateCLIGolden {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("golden file %s: %v (run with -update-cli-golden to create it)", p, err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// TestListOutputsGolden drives a small, fixed story and checks the text,
// JSON and CSV forms of `requests`, `grants` and `audit search` against
// golden files.
func TestListOutputsGolden(t *testing.T) {
	g := startGateway(t)
	base := newCLI(t, g.url)
	alice, bob, carol := base.as(g.token("alice")), base.as(g.token("bob")), base.as(g.token("carol"))

	// A prod request approved by bob, then revoked by him.
	out, _, code := alice.run("request", "checkout/prod", "--for", "20m", "--reason", "INC-1 payment errors")
	if code != 0 {
		t.Fatalf("request: %d %s", code, out)
	}
	prodReq := regexpFind(t, out, `Request (req_\S+) `)
	bob.mustRun("approve", prodReq, "--comment", "go")
	// A staging request, approved by policy.
	alice.mustRun("request", "checkout/staging", "--for", "1h", "--reason", "=HYPERLINK(\"http://x\") retries")
	// A prod request policy denies (no ticket id).
	if _, _, code := alice.run("request", "checkout/prod", "--for", "30m", "--reason", "just looking"); code != exitcode.Denied {
		t.Fatalf("denied request: exit %d", code)
	}
	grants := alice.mustRun("grants", "--output", "csv")
	prodGrant := regexpFind(t, grants, `(grt_[a-z0-9]+),active,checkout/prod`)
	bob.mustRun("revoke", prodGrant, "--reason", "incident closed")

	for _, format := range []string{"text", "json", "csv"} {
		checkGolden(t, "requests."+format, alice.mustRun("requests", "--output", format))
		checkGolden(t, "grants."+format, alice.mustRun("grants", "--output", format))
	}
	for _, format := range []string{"table", "json", "csv"} {
		out := carol.mustRun("audit", "search", "--service", "checkout", "--env", "prod", "--output", format)
		checkGolden(t, "audit_search."+format, out)
	}
	// Alice may not search the audit trail: exit 3.
	if _, errOut, code := alice.run("audit", "search"); code != exitcode.Denied || !strings.Contains(errOut, "denied: the audit trail is for security") {
		t.Errorf("alice audit search: exit %d, %q", code, errOut)
	}
	// The grant's story, as its holder sees it.
	tl := alice.mustRun("audit", "timeline", prodGrant)
	for _, want := range []string{"request.created", "request.approved", "grant.issued", "grant.revoked", "incident closed"} {
		if !strings.Contains(tl, want) {
			t.Errorf("timeline lacks %q:\n%s", want, tl)
		}
	}
}

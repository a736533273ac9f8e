package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/cli"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// TestStreamsWhoamiExtend covers the smaller commands against a real gateway.
func TestStreamsWhoamiExtend(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))

	out := alice.mustRun("streams")
	for _, want := range []string{"checkout/prod     1 from sre-leads", "checkout/staging  automatic"} {
		if !strings.Contains(out, want) {
			t.Errorf("streams lacks %q:\n%s", want, out)
		}
	}

	var me struct{ Email string }
	if err := json.Unmarshal([]byte(alice.mustRun("whoami", "--output", "json")), &me); err != nil || me.Email != "alice@example.com" {
		t.Errorf("whoami json: %+v %v", me, err)
	}

	alice.mustRun("request", "checkout/staging", "--for", "10m", "--reason", "extend test")
	grant := regexpFind(t, alice.mustRun("grants", "--active", "--output", "csv"), `(grt_[a-z0-9]+),active,checkout/staging`)
	out = alice.mustRun("extend", grant, "--for", "15m", "--reason", "still digging")
	if !strings.HasPrefix(out, "Extended grant "+grant+" by 15m0s") {
		t.Errorf("extend output = %q", out)
	}

	// Security sees everyone's grants; alice may not.
	carol := alice.as(g.token("carol"))
	if out := carol.mustRun("grants", "--all"); !strings.Contains(out, grant) {
		t.Errorf("carol's grants --all lacks %s:\n%s", grant, out)
	}
	if _, errOut, code := alice.run("grants", "--all"); code != exitcode.Denied || !strings.Contains(errOut, "denied:") {
		t.Errorf("alice grants --all: exit %d %q", code, errOut)
	}
}

// TestBreakGlassAndDenyWhileWaiting: bob (oncall) breaks glass and gets a
// grant at once; alice's waited-for request denied by bob exits 3 and says who.
func TestBreakGlassAndDenyWhileWaiting(t *testing.T) {
	g := startGateway(t)
	base := newCLI(t, g.url)
	alice, bob := base.as(g.token("alice")), base.as(g.token("bob"))

	out := bob.mustRun("request", "checkout/prod", "--for", "10m", "--reason", "INC-9 outage, nobody awake", "--break-glass")
	if !strings.Contains(out, "Approved by break-glass; security will review this access: checkout/prod for 10m0s.") ||
		!regexp.MustCompile(`Grant grt_\S+ is active until`).MatchString(out) {
		t.Errorf("break-glass output = %q", out)
	}

	r := alice.start("request", "checkout/prod", "--for", "5m", "--reason", "INC-10 look", "--wait")
	reqID := waitFor(t, r.stdout, `Request (req_\S+) for`, 20*time.Second)
	waitFor(t, r.stderr, `Waiting for`, 5*time.Second)
	bob.mustRun("deny", reqID, "--comment", "use staging first")
	if code := r.wait(t, 10*time.Second); code != exitcode.Denied {
		t.Fatalf("denied while waiting: exit %d, want 3\n%s", code, r.stderr)
	}
	if !strings.Contains(r.stdout.String(), `Denied by bob <bob@example.com>: "use staging first".`) {
		t.Errorf("stdout = %q", r.stdout)
	}
}

// TestTailWarnsBeforeExpiry: a minute before the grant ends the tail says
// so on stderr, with the command to extend. The client's clock runs 58s
// behind so the minute mark comes two seconds in.
func TestTailWarnsBeforeExpiry(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))
	alice.mustRun("request", "checkout/staging", "--for", "4s", "--reason", "warning test")
	alice.modify = func(c *cli.Env) { c.Now = func() time.Time { return time.Now().Add(-58 * time.Second) } }
	r := alice.start("tail", "checkout/staging")
	grant := waitFor(t, r.stderr, `with grant (grt_\S+)`, 10*time.Second)
	waitFor(t, r.stderr, `grant `+grant+` ends in 1 minute .*loggate extend `+grant+` --for 15m`, 10*time.Second)
	if code := r.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d at expiry", code)
	}
}

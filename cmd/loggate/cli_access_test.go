package main

import (
	"encoding/json"
	"strings"
	"testing"
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

	var me meView
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
	if _, errOut, code := alice.run("grants", "--all"); code != exitDenied || !strings.Contains(errOut, "denied:") {
		t.Errorf("alice grants --all: exit %d %q", code, errOut)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// TestShipFileToGateway: an admin creates a source, ship follows a file
// through rotation, and alice's tail sees every line once.
func TestShipFileToGateway(t *testing.T) {
	g := startGateway(t)
	base := newCLI(t, g.url)
	carol, alice := base.as(g.token("carol")), base.as(g.token("alice"))
	tokFile := filepath.Join(t.TempDir(), "src.token")
	out := carol.mustRun("source", "create", "--name", "shipper-test", "--stream", "checkout/staging", "--token-out", tokFile)
	if !strings.Contains(out, "Created source src_") || !strings.Contains(out, "Token written to") {
		t.Errorf("source create = %q", out)
	}
	if fi, err := os.Stat(tokFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}
	if out := carol.mustRun("source", "list"); !strings.Contains(out, "shipper-test") || !strings.Contains(out, "checkout/staging") {
		t.Errorf("source list = %q", out)
	}
	alice.mustRun("request", "checkout/staging", "--for", "2m", "--reason", "ship test")
	tail := alice.start("tail", "checkout/staging")
	waitFor(t, tail.stderr, "following", 10*time.Second)

	logPath := filepath.Join(t.TempDir(), "app.log")
	os.WriteFile(logPath, []byte("first line\n{\"message\":\"json line\",\"level\":\"error\"}\n"), 0o644)
	shipper := newCLI(t, g.url)
	ship := shipper.start("ship", "--token-file", tokFile, "--service", "checkout", "--env", "staging",
		"--flush", "50ms", "--poll", "20ms", logPath)
	waitFor(t, tail.stdout, `json line`, 10*time.Second)
	os.Rename(logPath, logPath+".1")
	os.WriteFile(logPath, []byte("after rotation\n"), 0o644)
	waitFor(t, tail.stdout, `after rotation`, 10*time.Second)
	ship.cancel()
	if code := ship.wait(t, 10*time.Second); code != 0 {
		t.Errorf("ship stop: exit %d: %s", code, ship.stderr)
	}
	got := tail.stdout.String()
	for _, want := range []string{"INFO  first line\n", "ERROR json line\n", "INFO  after rotation\n"} {
		if strings.Count(got, want) != 1 {
			t.Errorf("tail output has %q %d times:\n%s", want, strings.Count(got, want), got)
		}
	}
	if !strings.Contains(ship.stderr.String(), "was rotated") {
		t.Errorf("ship stderr = %q", ship.stderr)
	}

	// A revoked source's token is refused: exit 1 with the fix.
	srcID := regexpFind(t, carol.mustRun("source", "list", "--output", "csv"), `(src_[a-z0-9]+),shipper-test`)
	carol.mustRun("source", "revoke", srcID)
	shipper.stdin = "refused\n"
	if _, errOut, code := shipper.run("ship", "--token-file", tokFile, "--service", "checkout", "--env", "staging"); code != exitcode.Failure || !strings.Contains(errOut, "refused the source token") {
		t.Errorf("ship with a revoked token: exit %d, %q", code, errOut)
	}
}

package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/audit/sink"
)

// Tamper tests from outside: the real binary (this test binary as loggate,
// see TestMain) serves a trail in a data directory; the test then changes
// the files as an attacker holding the directory (and its signing key)
// would, and runs `loggate audit verify` and `loggate audit witness` as
// child processes. Every tamper must be reported by one of them (docs/audit.md
// has the table), and the untouched trail always verifies.

// trailChild is `loggate serve --dev` in a child process.
type trailChild struct {
	t    *testing.T
	cmd  *exec.Cmd
	g    *gatewayT
	gone chan struct{}
	errb *bytes.Buffer
}

func startTrailChild(t *testing.T, data string, extra ...string) *trailChild {
	t.Helper()
	addr := freeAddr(t)
	args := append([]string{"serve", "--dev", "--listen", addr, "--data", data, "--dev-demo-logs=false",
		"--log-level", "warn"}, extra...)
	c := &trailChild{t: t, cmd: childCommand(args...), g: &gatewayT{t: t, url: "http://" + addr},
		gone: make(chan struct{}), errb: &bytes.Buffer{}}
	c.cmd.Stderr = c.errb
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.gone) }()
	t.Cleanup(func() { c.cmd.Process.Kill(); <-c.gone })
	waitHealthy(t, c.g.url, c.gone, c.errb.String)
	return c
}

// stop ends the gateway gracefully (it writes its final checkpoint).
func (c *trailChild) stop() {
	c.t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.gone:
	case <-time.After(30 * time.Second):
		c.t.Fatal("gateway did not stop within 30s of SIGTERM")
	}
}

// activity makes n access requests (each a handful of audit events).
func metricsText(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitSinkCheckpoint waits until the audit sink file holds a pushed
// checkpoint at least as large as the one the gateway serves now.
func (c *trailChild) waitSinkCheckpoint(path string) {
	c.t.Helper()
	var now audit.Checkpoint
	if st := c.g.call("GET", "/api/v1/audit/checkpoint", "", nil, &now); st != 200 {
		c.t.Fatalf("GET /api/v1/audit/checkpoint: %d", st)
	}
	eventually(c.t, "the sink file holding a checkpoint of the served size", 30*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		cps, err := sink.ReadCheckpoints(bytes.NewReader(b))
		return err == nil && len(cps) > 0 && cps[len(cps)-1].Size >= now.Size
	})
}

func (c *trailChild) activity(n int) {
	c.t.Helper()
	alice := c.g.token("alice")
	for i := range n {
		var req requestJSON
		if code := c.g.call("POST", "/api/v1/requests", alice, map[string]string{"service": "checkout", "env": "staging",
			"duration": "1m", "reason": fmt.Sprintf("INC-%d tamper test", i)}, &req); code != 201 {
			c.t.Fatalf("request %d: status %d", i, code)
		}
	}
}

// runLoggate runs the binary to completion with extra environment.
func runLoggate(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := childCommand(args...)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("run %v: %v", args, err)
	return "", -1
}

func verifyTrail(t *testing.T, data string, extra ...string) (string, int) {
	t.Helper()
	return runLoggate(t, nil, append([]string{"audit", "verify", "--data", data}, extra...)...)
}

// copyTree copies a stopped gateway's directory.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tamperDB opens a copy's audit.db as an attacker does: triggers dropped.
func tamperDB(t *testing.T, data string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "audit", "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		triggers = append(triggers, n)
	}
	rows.Close()
	for _, tr := range triggers {
		stmts = append([]string{"DROP TRIGGER " + tr}, stmts...)
	}
	for _, q := range stmts {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestTamperSQLiteTrailFromOutside(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	root := t.TempDir()
	data := filepath.Join(root, "data")
	outside := filepath.Join(root, "other-mount")
	os.MkdirAll(outside, 0o700)
	cpFile := filepath.Join(outside, "checkpoints.jsonl")
	sinkFile := filepath.Join(outside, "audit-sink.ndjson") // events and pushed checkpoints
	state := filepath.Join(outside, "witness.json")
	withCopies := []string{"--audit-checkpoint-file", cpFile, "--audit-sink-file", sinkFile,
		"--audit-sink-checkpoint-interval", "20ms"}

	// A trail with some history, witnessed once (the first run trusts).
	c := startTrailChild(t, data, withCopies...)
	c.activity(4)
	witness := func(c *trailChild, env ...string) (string, int) {
		return runLoggate(t, env, "audit", "witness", "--server", c.g.url, "--state", state)
	}
	if out, code := witness(c); code != 0 || !strings.Contains(out, "first run") {
		t.Fatalf("first witness run: exit %d\n%s", code, out)
	}
	c.stop()
	if out, code := verifyTrail(t, data); code != 0 {
		t.Fatalf("the untouched trail: exit %d\n%s", code, out)
	}
	if out, code := verifyTrail(t, data, "--checkpoint", cpFile); code != 0 {
		t.Fatalf("the untouched trail with the checkpoint file: exit %d\n%s", code, out)
	}

	// (a)-(e): caught by verify alone.
	cases := []struct {
		name  string
		stmts []string
		want  string // in verify's output
	}{
		{"record changed", []string{`UPDATE events SET record = CAST(replace(CAST(record AS TEXT), '"action":"', '"action":"x') AS BLOB) WHERE seq = 5`}, "seq 5"},
		{"row deleted", []string{`DELETE FROM events WHERE seq = 5`}, "seq 5"},
		{"two rows swapped", []string{`UPDATE events SET seq = -4 WHERE seq = 4`, `UPDATE events SET seq = 4 WHERE seq = 5`,
			`UPDATE events SET seq = 5 WHERE seq = -4`}, "seq 4"},
		{"tail truncated", []string{`DELETE FROM events WHERE seq > 6`, `DELETE FROM tree WHERE leaf >= 6`}, "truncated"},
		{"checkpoint size column", []string{`UPDATE checkpoints SET size = size + 1 WHERE id = 1`}, "column size"},
	}
	for col, val := range map[string]string{"id": "'evt_other'", "time_ns": "time_ns + 1", "action": "'grant.revoked'",
		"outcome": "'denied'", "actor_subject": "'sub-mallory'", "actor_email": "'mallory@example.com'",
		"request_id": "'http-other'", "target_request_id": "'req-other'", "grant_id": "'grt-other'",
		"service": "'billing'", "env": "'prod'"} {
		cases = append(cases, struct {
			name  string
			stmts []string
			want  string
		}{"column " + col, []string{`UPDATE events SET ` + col + ` = ` + val + ` WHERE seq = 5`}, "column " + col})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp := filepath.Join(t.TempDir(), "data")
			copyTree(t, data, cp)
			tamperDB(t, cp, tc.stmts...)
			out, code := verifyTrail(t, cp)
			if code != 1 || !strings.Contains(out, "PROBLEM") || !strings.Contains(out, tc.want) {
				t.Errorf("verify after %s: exit %d, want 1 and a problem naming %q\n%s", tc.name, code, tc.want, out)
			}
		})
	}

	// (f) An older copy of the data directory put back: a valid trail, so
	// verify alone passes; the checkpoint file and the witness catch it.
	older := filepath.Join(root, "older")
	copyTree(t, data, older)
	c = startTrailChild(t, data, withCopies...)
	c.activity(8)
	if out, code := witness(c); code != 0 || !strings.Contains(out, "OK: the trail extends") {
		t.Fatalf("witness after growth: exit %d\n%s", code, out)
	}
	c.waitSinkCheckpoint(sinkFile)
	if m := metricsText(t, c.g.url); !strings.Contains(m, `loggate_audit_sink_checkpoints_total{result="ok",sink="file"}`) {
		t.Error("no loggate_audit_sink_checkpoints_total{result=ok,sink=file} in /metrics")
	}
	c.stop()
	witnessed, _ := os.ReadFile(state)
	restored := filepath.Join(root, "restored")
	copyTree(t, older, restored)
	if out, code := verifyTrail(t, restored); code != 0 {
		t.Fatalf("verify alone on the older copy: exit %d (it is a valid trail)\n%s", code, out)
	}
	for _, f := range []string{cpFile, sinkFile} {
		if out, code := verifyTrail(t, restored, "--checkpoint", f); code != 1 || !strings.Contains(out, "truncated") {
			t.Errorf("verify --checkpoint %s on the older copy: exit %d, want 1 and truncated\n%s", filepath.Base(f), code, out)
		}
	}
	c = startTrailChild(t, restored, "--audit-checkpoint-file", cpFile)
	out, code := witness(c, "LOGGATE_TOKEN="+c.g.token("alice"))
	if code != 1 || !strings.Contains(out, "rollback") {
		t.Errorf("witness on the older copy: exit %d, want 1 and rollback\n%s", code, out)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(after, witnessed) {
		t.Error("a failed witness run changed the state file")
	}
	var reported struct {
		Items []auditJSON `json:"items"`
	}
	if st := c.g.call("GET", "/api/v1/audit?action=audit.witness_failed", c.g.token("carol"), nil, &reported); st != 200 ||
		len(reported.Items) != 1 {
		t.Errorf("audit.witness_failed events: status %d, %d, want 1", st, len(reported.Items))
	}
	c.stop()

	// (g) History rewritten and re-signed with the stored key: verify passes
	// (everything is consistent and signed by the trail's own key); the
	// witness and the checkpoint file catch it.
	rewritten := filepath.Join(root, "rewritten")
	copyTree(t, data, rewritten)
	rewriteTrail(t, filepath.Join(rewritten, "audit"))
	if out, code := verifyTrail(t, rewritten); code != 0 {
		t.Fatalf("verify alone on the rewritten trail: exit %d (it is consistent)\n%s", code, out)
	}
	for _, f := range []string{cpFile, sinkFile} {
		if out, code := verifyTrail(t, rewritten, "--checkpoint", f); code != 1 {
			t.Errorf("verify --checkpoint %s on the rewritten trail: exit %d, want 1\n%s", filepath.Base(f), code, out)
		}
	}
	c = startTrailChild(t, rewritten)
	if out, code := witness(c); code != 1 || !strings.Contains(out, "fork") {
		t.Errorf("witness on the rewritten trail: exit %d, want 1 and fork\n%s", code, out)
	}
	c.stop()

	// The real trail still verifies and still extends what the witness saw.
	for _, f := range []string{cpFile, sinkFile} {
		if out, code := verifyTrail(t, data, "--checkpoint", f); code != 0 {
			t.Errorf("the untouched trail at the end, --checkpoint %s: exit %d\n%s", filepath.Base(f), code, out)
		}
	}
	c = startTrailChild(t, data)
	if out, code := witness(c); code != 0 {
		t.Errorf("witness on the untouched trail at the end: exit %d\n%s", code, out)
	}
	// A corrupt state file is a clear error (exit 6) and stays as it was.
	os.WriteFile(state, []byte("{not json"), 0o600)
	if out, code := witness(c); code != 6 || !strings.Contains(out, "witness state") {
		t.Errorf("corrupt state: exit %d, want 6\n%s", code, out)
	}
	if b, _ := os.ReadFile(state); string(b) != "{not json" {
		t.Error("a corrupt state file was overwritten")
	}
}

// rewriteTrail replaces the trail in dir with a new one holding its events
// with one changed, signed with the trail's own key, as an attacker with the
// data directory can: every hash, tree hash and checkpoint is consistent.
func rewriteTrail(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	orig, err := audit.Open(ctx, audit.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = orig.Export(ctx, &buf, "ndjson", audit.Query{})
	orig.Close()
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "keys", "audit.key"))
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "keys"), 0o700)
	os.WriteFile(filepath.Join(dir, "keys", "audit.key"), key, 0o600)
	forged, err := audit.Open(ctx, audit.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer forged.Close()
	dec := json.NewDecoder(&buf)
	for i := 0; dec.More(); i++ {
		var ev audit.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			ev.Actor.Email = "someone-else@example.com" // the change the attacker wants
		}
		if _, err := forged.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
}

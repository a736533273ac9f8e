package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// childCommand is the real binary (this test binary as loggate, see
// TestMain) with args.
func childCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOGGATE_TEST_RUN_MAIN=1", "LOGGATE_TEST_ARGS="+strings.Join(args, "\x1f"))
	return cmd
}

// startSealedChild runs `serve --dev --encryption-key-file keyFile` in a
// child process until it answers /healthz.
func startSealedChild(t *testing.T, addr, data, keyFile string) *exec.Cmd {
	t.Helper()
	cmd := childCommand("serve", "--dev", "--listen", addr, "--data", data, "--dev-demo-logs=false", "--log-level", "warn",
		"--dev-source-token", "lgs_sealed_contract_token", "--encryption-key-file", keyFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	waitHealthy(t, "http://"+addr, exited, stderr.String)
	return cmd
}

// stopChild ends a child gateway gracefully (SIGTERM) and waits.
func stopChild(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGTERM)
	if !within(20*time.Second, 50*time.Millisecond, func() bool {
		return cmd.ProcessState != nil || cmd.Process.Signal(syscall.Signal(0)) != nil
	}) {
		t.Fatal("gateway did not stop within 20s of SIGTERM")
	}
}

// filesHolding lists the files under dir whose bytes contain s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) {
			rel, _ := filepath.Rel(dir, p)
			hits = append(hits, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestContractSealedBacklog is the outside contract of an encrypted
// backlog, on the real binary: `keys generate > FILE` writes a private key
// file; serve with it leaves no byte of an ingested line in clear anywhere
// under --data (WAL included, audit trail included); a restart with the
// same key file backfills the line; a different key file stops the start
// naming the key it needs, touching nothing.
func TestContractSealedBacklog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "backlog.keys")
	out, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE, 0o644) // as a shell's `>` would
	if err != nil {
		t.Fatal(err)
	}
	gen := childCommand("keys", "generate")
	gen.Stdout = out
	var genErr bytes.Buffer
	gen.Stderr = &genErr
	if err := gen.Run(); err != nil {
		t.Fatalf("keys generate: %v: %s", err, genErr.String())
	}
	out.Close()
	if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	ring, err := seal.LoadFile(keyFile)
	if err != nil {
		t.Fatalf("generated key file does not load: %v", err)
	}

	addr, data := freeAddr(t), filepath.Join(dir, "data")
	child := startSealedChild(t, addr, data, keyFile)
	g := &gatewayT{t: t, url: "http://" + addr}
	const canary = "pangolin-canary-2f9e orders stuck in queue"
	if code := g.ingest("checkout", "staging", "lgs_sealed_contract_token", `{"message":"`+canary+`","level":"error","user":"pangolin-attr"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	stopChild(t, child) // writes the backlog
	for _, s := range []string{"pangolin", "2f9e"} {
		if hits := filesHolding(t, data, s); len(hits) > 0 {
			t.Errorf("%q found in clear under --data in %v", s, hits)
		}
	}

	child = startSealedChild(t, addr, data, keyFile)
	alice := g.token("alice")
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "staging",
		"duration": "10m", "reason": "INC-16 sealed backfill"}, &req); code != 201 || req.Grant == nil {
		t.Fatalf("request: %d %+v", code, req)
	}
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/api/v1/grants/"+req.Grant.ID+"/tail?lines=10",
		http.Header{"Authorization": {"Bearer " + alice}})
	if err != nil {
		t.Fatal(err)
	}
	got := readEntries(t, conn, 1)
	conn.Close()
	if got[0]["message"] != canary {
		t.Errorf("backfill after restart = %v, want the ingested line", got[0])
	}
	stopChild(t, child)
	// Viewing wrote audit events: they name the stream, never the content.
	if hits := filesHolding(t, data, "pangolin"); len(hits) > 0 {
		t.Errorf("log content found in clear after a view in %v", hits)
	}

	// Another key file: the start stops, names the key, changes nothing.
	otherKeys := filepath.Join(dir, "other.keys")
	if err := os.WriteFile(otherKeys, seal.Generate(), 0o600); err != nil {
		t.Fatal(err)
	}
	before := backlogRows(t, data, ring)
	wrong := childCommand("serve", "--dev", "--listen", freeAddr(t), "--data", data, "--dev-demo-logs=false",
		"--encryption-key-file", otherKeys)
	// A start that wrongly succeeds must not hang the test.
	timer := time.AfterFunc(60*time.Second, func() { wrong.Process.Kill() })
	msg, err := wrong.CombinedOutput()
	timer.Stop()
	if err == nil || !strings.Contains(string(msg), "sealed with key "+ring.NewestID()) {
		t.Errorf("serve with another key file: %v\n%s\nwant a failure naming key %s", err, msg, ring.NewestID())
	}
	if after := backlogRows(t, data, ring); !slices.Equal(before, after) {
		t.Errorf("a refused start changed the backlog: %q -> %q", before, after)
	}
	if len(before) != 1 {
		t.Errorf("backlog = %q, want the one ingested line", before)
	}
}

// backlogRows reads the checkout/staging backlog under data with ring.
func backlogRows(t *testing.T, data string, ring *seal.Ring) []string {
	t.Helper()
	ctx := context.Background()
	b, err := logs.OpenSQLiteBacklog(ctx, filepath.Join(data, "logs.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.UseKeys(ctx, ring); err != nil {
		t.Fatal(err)
	}
	es, err := b.Range(ctx, logs.Stream{Service: "checkout", Env: "staging"}, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d %s", e.Seq, e.Message))
	}
	return out
}

//go:build unix

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/loggate/loggate/gateway/logs/seal"
)

// serveOnce runs serve with args and returns its error; used for starts
// that must be refused before anything listens for long.
func serveOnce(t *testing.T, args ...string) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	return runServe(ctx, args, func(string) string { return "" }, io.Discard, io.Discard,
		&serveHooks{ready: func(*running) { cancel() }})
}

// TestServeRefusesOpenPermissions: a too-open data directory or key file
// stops serve with the file and the chmod that fixes it; the flag for
// containers accepts it.
func TestServeRefusesOpenPermissions(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "backlog.keys")
	if err := os.WriteFile(keyFile, seal.Generate(), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(data string) []string {
		return []string{"--dev", "--listen", "127.0.0.1:0", "--data", data, "--dev-demo-logs=false", "--log-level", "error",
			"--encryption-key-file", keyFile}
	}

	t.Run("open data directory", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		// Something of an earlier run is in it: serve must not fix the mode itself.
		if err := os.WriteFile(filepath.Join(data, "state.db"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chmod(data, 0o755)
		err := serveOnce(t, base(data)...)
		if err == nil || !strings.Contains(err.Error(), "chmod 700 "+data) || !strings.Contains(err.Error(), "--allow-open-permissions") {
			t.Fatalf("serve = %v, want a refusal naming chmod 700 %s", err, data)
		}
		if _, err := os.Stat(filepath.Join(data, "logs.db")); err == nil {
			t.Error("a refused start created logs.db")
		}
		if fi, _ := os.Stat(data); fi.Mode().Perm() != 0o755 {
			t.Errorf("a refused start changed the mode to %04o", fi.Mode().Perm())
		}
		if err := serveOnce(t, append(base(data), "--allow-open-permissions")...); err != nil {
			t.Fatalf("with --allow-open-permissions: %v", err)
		}
	})
	t.Run("empty open data directory", func(t *testing.T) {
		// mkdir under umask 022: nothing to protect yet, so serve makes it 0700.
		data := filepath.Join(t.TempDir(), "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chmod(data, 0o755)
		if err := serveOnce(t, base(data)...); err != nil {
			t.Fatalf("serve on an empty 0755 directory: %v", err)
		}
		if fi, _ := os.Stat(data); fi.Mode().Perm() != 0o700 {
			t.Errorf("data directory mode %04o, want 0700", fi.Mode().Perm())
		}
	})
	t.Run("readable key file", func(t *testing.T) {
		os.Chmod(keyFile, 0o644)
		defer os.Chmod(keyFile, 0o600)
		err := serveOnce(t, base(filepath.Join(t.TempDir(), "data"))...)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+keyFile) || !strings.Contains(err.Error(), "--encryption-key-file") {
			t.Fatalf("serve = %v, want a refusal naming chmod 600 %s", err, keyFile)
		}
	})
	t.Run("readable generated key", func(t *testing.T) {
		data := filepath.Join(t.TempDir(), "data")
		if err := serveOnce(t, base(data)...); err != nil {
			t.Fatal(err)
		}
		session := filepath.Join(data, "keys", "session.key")
		os.Chmod(session, 0o640)
		err := serveOnce(t, base(data)...)
		if err == nil || !strings.Contains(err.Error(), "chmod 600 "+session) {
			t.Fatalf("serve = %v, want a refusal naming chmod 600 %s", err, session)
		}
	})
}

// TestServeCreatesPrivateFiles: started by the real binary under a
// permissive umask, everything serve creates under --data (databases with
// their WAL files, sessions, keys, audit trail) gives others nothing.
func TestServeCreatesPrivateFiles(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "backlog.keys")
	if err := os.WriteFile(keyFile, seal.Generate(), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, data := freeAddr(t), filepath.Join(dir, "data")
	old := syscall.Umask(0o022) // the child inherits a usual umask
	child := startSealedChild(t, addr, data, keyFile)
	syscall.Umask(old)
	g := &gatewayT{t: t, url: "http://" + addr}
	if code := g.ingest("checkout", "staging", "lgs_sealed_contract_token", `{"message":"hello"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	g.token("alice") // a sign-in writes audit records
	var seen []string
	check := func() {
		filepath.WalkDir(data, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := d.Info()
			seen = append(seen, filepath.Base(p))
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %04o, want no group or other bits", p, fi.Mode().Perm())
			}
			return nil
		})
	}
	check() // while running: WAL and SHM files exist
	stopChild(t, child)
	check()
	for _, want := range []string{"logs.db", "audit.db", "session.key"} {
		if !strings.Contains(strings.Join(seen, " "), want) {
			t.Errorf("%s not found under --data (saw %v)", want, seen)
		}
	}
}

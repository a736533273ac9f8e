package main

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// goroutinesIn reports whether any goroutine's stack holds fn.
func goroutinesIn(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// TestServeWaitsForItsGoroutines: the demo source and the policy watch are
// owned by runServe's steps; when serve returns, neither is still running.
func TestServeWaitsForItsGoroutines(t *testing.T) {
	g := startServe(t, []string{"--dev", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--dev-demo-logs=true",
		"--policies", "../../policies", "--log-level", "error"})
	for _, fn := range []string{"cmd/loggate.runDemoSource(", "policy.(*Engine).Watch("} {
		// Waiting for a goroutine to appear: no event to wait on.
		if !within(10*time.Second, 10*time.Millisecond, func() bool { return goroutinesIn(fn) }) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s never started:\n%s", fn, buf[:runtime.Stack(buf, true)])
		}
	}
	g.stop()
	for _, fn := range []string{"cmd/loggate.runDemoSource(", "policy.(*Engine).Watch("} {
		if goroutinesIn(fn) {
			t.Errorf("%s still runs after serve returned", fn)
		}
	}
}

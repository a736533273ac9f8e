package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// TestMain lets a test run the real binary in a child process (to kill it
// hard): with LOGGATE_TEST_RUN_MAIN=1 the test binary is loggate itself.
func TestMain(m *testing.M) {
	if os.Getenv("LOGGATE_TEST_RUN_MAIN") == "1" {
		args := strings.Split(os.Getenv("LOGGATE_TEST_ARGS"), "\x1f")
		// SIGTERM stops the child as it stops loggate: gracefully.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := run(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
		stop()
		code, print := exitcode.Of(err) // the codes main exits with
		if print {
			fmt.Fprintln(os.Stderr, "loggate:", err)
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// startChild runs `loggate serve --dev` in a child process on a fixed port
// and waits until it answers /healthz.
// extra flags come last, so they override the defaults given here.
func startChild(t *testing.T, addr, data string, extra ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOGGATE_TEST_RUN_MAIN=1", "LOGGATE_TEST_ARGS="+strings.Join(append([]string{
		"serve", "--dev", "--listen", addr, "--data", data, "--dev-demo-logs=false", "--log-level", "warn",
		"--tail-progress-interval", "200ms", "--dev-source-token", "lgs_crash_test_token"}, extra...), "\x1f"))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { // drain so the child never blocks on a full pipe
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitHealthy(t, "http://"+addr, nil, nil)
	return cmd
}

// crashView is alice's view of a staging grant on a child gateway, one to
// kill -9, that saves the view's counts every 100ms and writes no
// stream.progress: only the saved counts can say what the view sent.
type crashView struct {
	t          *testing.T
	g          *gatewayT
	addr, data string
	child      *exec.Cmd
	req        requestJSON
	tc         *tailConn
	viewID     string
}

var crashViewFlags = []string{"--tail-progress-interval", "1h", "--view-counts-interval", "100ms"}

func startCrashView(t *testing.T, reason string) *crashView {
	t.Helper()
	v := &crashView{t: t, addr: freeAddr(t), data: t.TempDir()}
	v.child = startChild(t, v.addr, v.data, crashViewFlags...)
	v.g = &gatewayT{t: t, url: "http://" + v.addr}
	alice := v.g.token("alice")
	v.req = v.g.stagingGrant(alice, "10m", reason)
	v.tc, v.viewID = v.g.openView(v.req.Grant.ID, alice, "")
	return v
}

// awaitSaves waits (saying what) until n more saves of view counts have
// completed, calling feed (when not nil) on every poll.
func (v *crashView) awaitSaves(what string, n float64, feed func()) {
	v.t.Helper()
	base := scrape(v.t, v.g.url)["loggate_view_counts_saves_total"]
	eventually(v.t, what, 20*time.Second, func() bool {
		if feed != nil {
			feed()
		}
		return scrape(v.t, v.g.url)["loggate_view_counts_saves_total"] >= base+n
	})
}

// crash kills the gateway hard and starts it again on the same data; it
// returns carol's token and the view's stream.closed events once the
// restart has written one.
func (v *crashView) crash() (carol string, closed []auditJSON) {
	v.t.Helper()
	v.child.Process.Signal(syscall.SIGKILL)
	v.child.Wait()
	v.child = startChild(v.t, v.addr, v.data, crashViewFlags...)
	carol = v.g.token("carol")
	eventually(v.t, "the interrupted view closed", 20*time.Second, func() bool {
		closed = v.g.closedEvents(v.req.Grant.ID, carol)
		return len(closed) > 0
	})
	return carol, closed
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCrashRecovery kills the gateway mid-view and checks that the next
// start records what the crash left open: the view as interrupted (with its
// last saved counts) and the grant that expired while it was down, and
// that the audit trail still verifies.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	addr, data := freeAddr(t), t.TempDir()
	child := startChild(t, addr, data)
	g := &gatewayT{t: t, url: "http://" + addr}
	alice := g.token("alice")
	req := g.stagingGrant(alice, "3s", "INC-9 crash test")
	tc, _ := g.openView(req.Grant.ID, alice, "")
	conn := tc.conn
	if code := g.ingest("checkout", "staging", "lgs_crash_test_token", `{"message":"one"}`, `{"message":"two"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	readEntries(t, conn, 2)
	// Kill only once a stream.progress event has counted both lines: it is
	// what recovery reads the interrupted view's counts from.
	carol := g.token("carol")
	var progress struct {
		Items []auditJSON `json:"items"`
	}
	if !within(10*time.Second, 50*time.Millisecond, func() bool {
		g.call("GET", "/api/v1/audit?action=stream.progress&grant="+req.Grant.ID, carol, nil, &progress)
		if len(progress.Items) == 0 {
			return false
		}
		n, _ := progress.Items[0].Details["entries"].(float64)
		return n == 2
	}) {
		t.Fatalf("no stream.progress event counting 2 entries: %+v", progress.Items)
	}
	child.Process.Signal(syscall.SIGKILL)
	child.Wait()

	// The grant expires while loggate is down (a child process: wall time).
	time.Sleep(time.Until(req.Grant.ExpiresAt.Add(100 * time.Millisecond)))
	startChild(t, addr, data)
	carol = g.token("carol") // the restarted development provider signs with new keys
	var closed, expired struct {
		Items []auditJSON `json:"items"`
	}
	within(10*time.Second, 100*time.Millisecond, func() bool { // the checks below say what is missing
		g.call("GET", "/api/v1/audit?action=stream.closed&grant="+req.Grant.ID, carol, nil, &closed)
		g.call("GET", "/api/v1/audit?action=grant.expired&grant="+req.Grant.ID, carol, nil, &expired)
		return len(closed.Items) > 0 && len(expired.Items) > 0
	})
	if len(closed.Items) != 1 || closed.Items[0].Outcome != "interrupted" {
		t.Fatalf("stream.closed after the crash = %+v, want one, interrupted", closed.Items)
	}
	if n, _ := closed.Items[0].Details["entries"].(float64); n != 2 {
		t.Errorf("interrupted view's entries = %v, want 2 (from its last progress event)", closed.Items[0].Details["entries"])
	}
	if len(expired.Items) != 1 {
		t.Errorf("grant.expired events = %d, want 1", len(expired.Items))
	}
	var verify struct {
		Verified bool `json:"verified"`
	}
	if code := g.call("GET", "/api/v1/audit/verify?fresh=true", carol, nil, &verify); code != 200 || !verify.Verified {
		t.Errorf("audit verify after crash: %d %+v", code, verify)
	}
}

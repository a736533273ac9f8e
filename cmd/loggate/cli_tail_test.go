package main

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/cli"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// TestRequestWaitApproveTailRevoke is the 3 a.m. story: alice asks for prod
// and waits; bob approves from his own terminal; alice's tail receives the
// lines; bob revokes and alice's tail ends with exit code 4.
func TestRequestWaitApproveTailRevoke(t *testing.T) {
	g := startGateway(t)
	base := newCLI(t, g.url)
	alice, bob := base.as(g.token("alice")), base.as(g.token("bob"))

	r := alice.start("request", "checkout/prod", "--for", "5m", "--reason", "INC-4211 checkout 502s", "--wait")
	reqID := waitFor(t, r.stdout, `Request (req_\S+) for checkout/prod \(5m0s\) is pending: it needs 1 approval from sre-leads`, 20*time.Second)
	waitFor(t, r.stderr, `Waiting for 1 approval`, 5*time.Second)

	// Bob's inbox shows it; he approves.
	if out := bob.mustRun("requests", "--pending"); !strings.Contains(out, reqID) || !strings.Contains(out, "alice@example.com") {
		t.Errorf("bob's pending requests = %q, want %s", out, reqID)
	}
	// Alice cannot approve her own request: exit 3 (denied).
	if _, errOut, code := alice.run("approve", reqID); code != exitcode.Denied || !strings.Contains(errOut, "your own request") {
		t.Errorf("self-approval: exit %d, stderr %q", code, errOut)
	}
	out := bob.mustRun("approve", reqID, "--comment", "go ahead")
	if !strings.Contains(out, "Approved request "+reqID) || !strings.Contains(out, "asked by alice <alice@example.com>") {
		t.Errorf("approve output = %q", out)
	}

	waitFor(t, r.stdout, `Approved by bob <bob@example.com>: "go ahead"`, 10*time.Second)
	grantID := waitFor(t, r.stderr, `following checkout/prod with grant (grt_\S+) until`, 10*time.Second)

	src := g.r.SourceTokens["checkout/prod"]
	if code := g.ingest("checkout", "prod", src,
		`{"message":"payment failed","level":"error","order":"ord_1"}`,
		`{"message":"calling payments with Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789","level":"debug"}`,
		`{"message":"evil \u001b[2J clear","level":"info"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	waitFor(t, r.stdout, `evil`, 10*time.Second)
	got := r.stdout.String()
	if !regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{3} ERROR payment failed order=ord_1\n`).MatchString(got) {
		t.Errorf("tail output lacks the error line in plain text:\n%s", got)
	}
	if strings.Contains(got, "abcdefghijklmnop") {
		t.Error("a secret reached the terminal")
	}
	if strings.Contains(got, "\x1b") {
		t.Error("an escape sequence from a log line reached the terminal (or colour on a pipe)")
	}
	if !strings.Contains(got, `evil \u001b[2J clear`) {
		t.Errorf("escape not shown escaped:\n%s", got)
	}
	waitFor(t, r.stderr, `values were redacted at ingest`, 5*time.Second)

	// Grants as bob's view: he may revoke as an approver of prod.
	out = bob.mustRun("revoke", grantID, "--reason", "incident closed")
	if !strings.Contains(out, "Revoked grant "+grantID) {
		t.Errorf("revoke output = %q", out)
	}
	if code := r.wait(t, 15*time.Second); code != exitcode.Ended {
		t.Fatalf("tail after revoke: exit %d, want 4\nstderr: %s", code, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "revoked: incident closed") {
		t.Errorf("revoke reason not shown: %s", r.stderr)
	}

	// Tailing the ended grant again: exit 4 before any streaming.
	if _, errOut, code := alice.run("tail", grantID); code != exitcode.Ended || !strings.Contains(errOut, "was revoked") {
		t.Errorf("tail of a revoked grant: exit %d, stderr %q", code, errOut)
	}
	// By stream name there is no active grant any more: the error says how to get one.
	if _, errOut, code := alice.run("tail", "checkout/prod"); code != exitcode.Failure || !strings.Contains(errOut, "loggate request checkout/prod") {
		t.Errorf("tail without a grant: exit %d, stderr %q", code, errOut)
	}
}

// TestTailExpiryExitsZero: a running tail that reaches the grant's expiry
// exits 0, and the JSON output is one entry per line.
func TestTailExpiryExitsZero(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))
	out := alice.mustRun("request", "checkout/staging", "--for", "3s", "--reason", "checking retries")
	if !strings.Contains(out, "Approved automatically by policy: checkout/staging for 3s") {
		t.Errorf("request output = %q", out)
	}
	r := alice.start("tail", "checkout/staging", "--output", "json")
	grantID := waitFor(t, r.stderr, `following checkout/staging with grant (grt_\S+)`, 10*time.Second)
	g.ingest("checkout", "staging", g.r.SourceTokens["checkout/staging"], `{"message":"hello","level":"warn"}`)
	if code := r.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("tail at expiry: exit %d, want 0\nstderr: %s", code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout.String()), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], `{"seq":`) || !strings.Contains(lines[0], `"message":"hello"`) {
		t.Errorf("json output = %q", r.stdout)
	}
	if !strings.Contains(r.stderr.String(), "expired") {
		t.Errorf("stderr does not say the grant expired: %s", r.stderr)
	}
	// The expired grant: exit 4 at once.
	if _, errOut, code := alice.run("tail", grantID); code != exitcode.Ended || !strings.Contains(errOut, "has expired") {
		t.Errorf("tail of an expired grant: exit %d, want 4; stderr %q", code, errOut)
	}
	if _, _, code := alice.run("tail", "checkout/staging"); code != exitcode.Failure {
		t.Errorf("tail by stream after expiry: exit %d, want 1 (no active grant)", code)
	}
}

// TestRequestDeniedExitsThree: a request policy denies prints the reasons
// and exits 3.
func TestRequestDeniedExitsThree(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))
	out, _, code := alice.run("request", "checkout/prod", "--for", "30m", "--reason", "just looking")
	if code != exitcode.Denied || !strings.HasPrefix(out, "Denied: checkout/prod for 30m0s.\n  - ") {
		t.Errorf("denied request: exit %d, stdout %q", code, out)
	}
}

// TestWaitCtrlCCancels: Ctrl-C while waiting asks, and "y" cancels the request.
func TestWaitCtrlCCancels(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))
	alice.stdin = "y\n"
	alice.modify = func(c *cli.Env) { c.Interactive = func() bool { return true } }
	r := alice.start("request", "checkout/prod", "--for", "5m", "--reason", "INC-7 look", "--wait")
	reqID := waitFor(t, r.stdout, `Request (req_\S+) for`, 20*time.Second)
	waitFor(t, r.stderr, `Waiting for`, 5*time.Second)
	r.cancel() // Ctrl-C
	if code := r.wait(t, 15*time.Second); code != exitcode.Aborted {
		t.Fatalf("exit %d, want 130\nstderr: %s", code, r.stderr)
	}
	if !strings.Contains(r.stderr.String(), "Cancel request "+reqID+" too? [Y/n]") || !strings.Contains(r.stderr.String(), "Cancelled request "+reqID) {
		t.Errorf("stderr = %q", r.stderr)
	}
	out := alice.mustRun("requests", "--output", "csv")
	if !strings.Contains(out, reqID+",cancelled,") {
		t.Errorf("request not cancelled:\n%s", out)
	}
}

// cutProxy forwards TCP to a target and can cut every open connection, to
// simulate a network blip between the CLI and the gateway.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) url() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestTailReconnectResumes cuts the connection mid-tail: the CLI says it is
// reconnecting, resumes after the last seq, and prints every line once.
func TestTailReconnectResumes(t *testing.T) {
	g := startGateway(t)
	proxy := newCutProxy(t, strings.TrimPrefix(g.url, "http://"))
	alice := newCLI(t, proxy.url()).as(g.token("alice"))
	alice.mustRun("request", "checkout/staging", "--for", "2m", "--reason", "reconnect test")
	r := alice.start("tail", "checkout/staging")
	waitFor(t, r.stderr, `following checkout/staging`, 10*time.Second)
	src := g.r.SourceTokens["checkout/staging"]
	send := func(from, to int) {
		for i := from; i <= to; i++ {
			if code := g.ingest("checkout", "staging", src, fmt.Sprintf(`{"message":"line %d","level":"info"}`, i)); code != 200 {
				t.Fatalf("ingest %d: %d", i, code)
			}
		}
	}
	send(1, 5)
	waitFor(t, r.stdout, `line 5\n`, 10*time.Second)
	proxy.cut()
	send(6, 10) // while the tail is down or reconnecting
	waitFor(t, r.stderr, `reconnected to checkout/staging`, 15*time.Second)
	send(11, 12)
	waitFor(t, r.stdout, `line 12\n`, 10*time.Second)
	if !regexp.MustCompile(`connection lost .*; reconnecting in \S+ \(resuming after line \d+\)`).MatchString(r.stderr.String()) {
		t.Errorf("stderr does not announce the reconnect:\n%s", r.stderr)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(r.stdout.String()), "\n") {
		m := regexp.MustCompile(`INFO  (line \d+)$`).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("unexpected output line %q", l)
		}
		got = append(got, m[1])
	}
	var want []string
	for i := 1; i <= 12; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("lines after reconnect:\ngot  %v\nwant %v", got, want)
	}
	r.cancel()
	if code := r.wait(t, 10*time.Second); code != exitcode.Aborted {
		t.Errorf("Ctrl-C: exit %d, want 130", code)
	}
}

// TestTailBackfillAndAutoApprovedWait: --lines shows the last lines first;
// `request --wait` on an auto-approved stream starts tailing at once and
// exits 0 when the grant expires.
func TestTailBackfillAndAutoApprovedWait(t *testing.T) {
	g := startGateway(t)
	alice := newCLI(t, g.url).as(g.token("alice"))
	src := g.r.SourceTokens["checkout/staging"]
	for i := 1; i <= 5; i++ {
		g.ingest("checkout", "staging", src, fmt.Sprintf(`{"message":"old %d","level":"info"}`, i))
	}
	r := alice.start("request", "checkout/staging", "--for", "3s", "--reason", "backfill", "--wait", "--lines", "2", "--level", "info")
	waitFor(t, r.stderr, `following checkout/staging`, 10*time.Second)
	if code := r.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, r.stderr)
	}
	out := r.stdout.String()
	if !strings.Contains(out, "Approved automatically by policy") || strings.Contains(out, "old 3") ||
		!strings.Contains(out, "INFO  old 4\n") || !strings.Contains(out, "INFO  old 5\n") {
		t.Errorf("stdout = %q, want the last 2 lines after the decision", out)
	}
}

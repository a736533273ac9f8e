package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/cli"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// syncBuffer is a bytes.Buffer safe to read while the CLI writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliT runs client commands in process for a test, as one user.
type cliT struct {
	t      *testing.T
	env    map[string]string
	stdin  string
	modify func(env *cli.Env)
}

// newCLI is a client with its own config directory, talking to server.
func newCLI(t *testing.T, server string) *cliT {
	return &cliT{t: t, env: map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "LOGGATE_SERVER": server, "HOME": t.TempDir()}}
}

// as returns a copy that authenticates with token (via LOGGATE_TOKEN).
func (ct *cliT) as(token string) *cliT {
	cp := *ct
	cp.env = map[string]string{}
	for k, v := range ct.env {
		cp.env[k] = v
	}
	cp.env["LOGGATE_TOKEN"] = token
	return &cp
}

func (ct *cliT) build(stdout, stderr io.Writer) *cliRun {
	env := cli.Env{Getenv: func(k string) string { return ct.env[k] }, Stdin: strings.NewReader(ct.stdin),
		Stdout: stdout, Stderr: stderr, PollEvery: 50 * time.Millisecond,
		OpenBrowser: func(context.Context, string) error { return errors.New("no browser in tests") }}
	if ct.modify != nil {
		ct.modify(&env)
	}
	return &cliRun{env: env}
}

// cliRun is one client invocation, ready to run.
type cliRun struct{ env cli.Env }

func (c *cliRun) run(ctx context.Context, args []string) error { return cli.Run(ctx, c.env, args) }
func (c *cliRun) saveConfig(cfg cli.Config) error              { return cli.SaveConfig(c.env, cfg) }
func (c *cliRun) loadConfig() (cli.Config, error)              { return cli.LoadConfig(c.env) }

// exitCode is what main would exit with for err.
func exitCode(err error) int {
	code, _ := exitcode.Of(err)
	return code
}

// run runs one command to completion.
func (ct *cliT) run(args ...string) (stdout, stderr string, code int) {
	ct.t.Helper()
	var out, errb syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := ct.build(&out, &errb).run(ctx, args)
	if err != nil {
		errb.Write([]byte("loggate: " + err.Error() + "\n"))
	}
	return out.String(), errb.String(), exitCode(err)
}

// mustRun runs a command that must succeed and returns its stdout.
func (ct *cliT) mustRun(args ...string) string {
	ct.t.Helper()
	out, errOut, code := ct.run(args...)
	if code != 0 {
		ct.t.Fatalf("loggate %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// running is a command started in the background.
type runningCLI struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
	err            error
}

func (ct *cliT) start(args ...string) *runningCLI {
	r := &runningCLI{stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan int, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	c := ct.build(r.stdout, r.stderr)
	go func() {
		err := c.run(ctx, args)
		if err != nil {
			r.stderr.Write([]byte("loggate: " + err.Error() + "\n"))
		}
		r.err = err
		r.done <- exitCode(err)
	}()
	ct.t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			ct.t.Error("background loggate did not stop")
		}
	})
	return r
}

// wait returns the exit code, failing the test after timeout.
func (r *runningCLI) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case code := <-r.done:
		r.done <- code // keep it for Cleanup
		return code
	case <-time.After(timeout):
		t.Fatalf("command still running after %s\nstdout: %s\nstderr: %s", timeout, r.stdout, r.stderr)
		return -1
	}
}

// waitFor polls until buf matches re and returns the first submatch (or
// the whole match).
func waitFor(t *testing.T, buf *syncBuffer, re string, timeout time.Duration) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	if !within(timeout, 20*time.Millisecond, func() bool { m = rx.FindStringSubmatch(buf.String()); return m != nil }) {
		t.Fatalf("no %q within %s in:\n%s", re, timeout, buf.String())
	}
	return m[len(m)-1]
}

// regexpFind returns the first submatch of re in s, failing the test without one.
func regexpFind(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in:\n%s", re, s)
	}
	return m[len(m)-1]
}

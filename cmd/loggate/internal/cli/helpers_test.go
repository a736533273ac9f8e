package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

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

// cliT runs client commands in process for a test.
type cliT struct {
	t      *testing.T
	env    map[string]string
	stdin  string
	modify func(c *cli)
}

// newCLI is a client with its own config directory, talking to server.
func newCLI(t *testing.T, server string) *cliT {
	return &cliT{t: t, env: map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "LOGGATE_SERVER": server, "HOME": t.TempDir()}}
}

func (ct *cliT) build(stdout, stderr io.Writer) *cli {
	c := &cli{getenv: func(k string) string { return ct.env[k] }, stdin: strings.NewReader(ct.stdin),
		stdout: stdout, stderr: stderr, pollEvery: 50 * time.Millisecond,
		openBrowser: func(context.Context, string) error { return errors.New("no browser in tests") }}
	if ct.modify != nil {
		ct.modify(c)
	}
	return c
}

// run runs one command to completion: its output and the exit code main
// would use.
func (ct *cliT) run(args ...string) (stdout, stderr string, code int) {
	ct.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := ct.build(&out, &errb).run(ctx, args)
	code, print := exitcode.Of(err)
	if print {
		errb.WriteString("loggate: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), code
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

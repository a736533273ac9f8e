// Package redistest starts a throwaway redis-server for tests: on a free
// loopback port, with every write fsynced (appendonly yes, appendfsync
// always) in a temporary directory. It is imported by tests only.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a redis-server process owned by a test.
type Server struct {
	t    testing.TB
	Addr string
	dir  string
	cmd  *exec.Cmd
	args []string
}

// URL returns the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a new client for the server, closed at the end of the test.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second,
		ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// Start runs a fresh redis-server, or skips (fails when CI=true) when none is
// installed. extra are additional config arguments ("--appendfsync", "no").
// The server is stopped at the end of the test.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed; .ci/run installs it")
		}
		t.Skip("SKIPPING: redis-server is not installed (apt-get install redis-server); Redis tests did not run")
	}
	port := freePort(t)
	s := &Server{t: t, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: t.TempDir()}
	s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--appendonly", "yes",
		"--appendfsync", "always", "--save", "", "--dir", s.dir, "--protected-mode", "no"}, extra...)
	s.start(bin)
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start(bin string) {
	s.t.Helper()
	s.cmd = exec.Command(bin, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server on %s did not answer: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (as a crash would: no final save beyond the AOF).
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port and directory, so it
// reloads its append-only file.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.t.Fatal(err)
	}
	s.start(bin)
}

// FromEnvOrStart uses REDIS_URL when set (flushing nothing: callers use a
// unique key prefix), else starts a server. The second result is nil with
// REDIS_URL, as that server cannot be stopped by the test.
func FromEnvOrStart(t testing.TB) (string, *Server) {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u, nil
	}
	s := Start(t)
	return s.URL(), s
}

// Prefix returns a key prefix unique to the test.
func Prefix(t testing.TB) string {
	return fmt.Sprintf("lgtest:%s:%d:", t.Name(), time.Now().UnixNano())
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

package sink

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

func openStore(t *testing.T) *audit.Store {
	t.Helper()
	s, err := audit.Open(context.Background(), audit.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func appendEvents(t *testing.T, s *audit.Store, n int) []audit.Event {
	t.Helper()
	out := make([]audit.Event, n)
	for i := range n {
		ev, err := s.Append(context.Background(), audit.Event{
			Action:  []string{"auth.login", "grant.issued", "stream.opened", "request.denied"}[i%4],
			Actor:   audit.Actor{Kind: audit.ActorUser, Subject: fmt.Sprintf("u%d", i), Email: "a@example.com"},
			Outcome: []string{audit.OutcomeSuccess, audit.OutcomeDenied, audit.OutcomeError}[i%3],
			Reason:  `quote " bracket ] backslash \ done`,
			Details: map[string]any{"i": i},
		})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = ev
	}
	return out
}

// checkLine checks that an NDJSON line (without newline) is a stored record
// followed by its hash, hashing to that hash given its prev_hash, and
// returns the event id and seq.
func checkLine(t *testing.T, line []byte) (string, int64) {
	t.Helper()
	var v struct {
		ID       string `json:"id"`
		Seq      int64  `json:"seq"`
		PrevHash string `json:"prev_hash"`
		Hash     string `json:"hash"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	suffix := []byte(`,"hash":"` + v.Hash + `"}`)
	if !bytes.HasSuffix(line, suffix) {
		t.Fatalf("line does not end with its hash member: %q", line)
	}
	rec := append(bytes.Clone(bytes.TrimSuffix(line, suffix)), '}')
	prev, _ := hex.DecodeString(v.PrevHash)
	sum := sha256.Sum256(append(prev, rec...))
	if got := hex.EncodeToString(sum[:]); got != v.Hash {
		t.Fatalf("seq %d: SHA-256(prev||record) = %s, line says %s", v.Seq, got, v.Hash)
	}
	return v.ID, v.Seq
}

// collector is a Sink that keeps what it got.
type collector struct {
	mu   sync.Mutex
	got  []audit.Record
	fail func(n int) error // called with the Deliver call number (from 1)
	n    int
}

func (c *collector) Deliver(_ context.Context, recs []audit.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.fail != nil {
		if err := c.fail(c.n); err != nil {
			return err
		}
	}
	c.got = append(c.got, recs...)
	return nil
}

func (c *collector) Close() error { return nil }

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.got {
		out = append(out, r.ID)
	}
	return out
}

// runUntil runs r until its cursor reaches seq (or the test times out) and
// stops it.
func runUntil(t *testing.T, r *Runner, seq int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for r.Cursor() < seq {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("cursor %d, want %d", r.Cursor(), seq)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func newRunner(t *testing.T, src Source, sk Sink, dir string, mod func(*Config)) *Runner {
	t.Helper()
	cfg := Config{Name: "test", Source: src, Sink: sk, CursorFile: filepath.Join(dir, "test.cursor"),
		Batch: 4, PollInterval: 5 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func lines(b []byte) [][]byte {
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, bytes.Clone(sc.Bytes()))
	}
	return out
}

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/audit/sink"
)

var (
	_ sink.CursorStore = (*LeaseCursor)(nil)
	_ sink.Leaser      = (*Lease)(nil)
	_ sink.Source      = (*Audit)(nil)
)

func TestAuditAfterReturnsStoredRecords(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.audit(t)
	for i := range 10 {
		if _, err := a.Append(ctx, event("grant.issued", fmt.Sprintf("g%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	var export bytes.Buffer
	if err := a.Export(ctx, &export, audit.FormatNDJSON, audit.Query{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		after        int64
		limit        int
		first, count int64
	}{
		{"first page", 0, 4, 1, 4},
		{"middle", 4, 3, 5, 3},
		{"rest without limit", 7, 0, 8, 3},
		{"past the end", 10, 5, 0, 0},
	}
	wantLines := bytes.SplitAfter(export.Bytes(), []byte("\n"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := a.After(ctx, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(recs)) != tt.count {
				t.Fatalf("got %d records, want %d", len(recs), tt.count)
			}
			for i, r := range recs {
				seq := tt.first + int64(i)
				if r.Seq != seq {
					t.Errorf("record %d seq = %d, want %d", i, r.Seq, seq)
				}
				if got, want := r.Line(), wantLines[seq-1]; !bytes.Equal(got, want) {
					t.Errorf("seq %d line = %s, want the exported %s", seq, got, want)
				}
				ev, err := r.Event()
				if err != nil {
					t.Fatalf("seq %d: %v", seq, err)
				}
				if ev.ID != r.ID || ev.Action != r.Action || !ev.Time.Equal(r.Time) || ev.Seq != seq {
					t.Errorf("seq %d: record %+v does not match its event %+v", seq, r, ev)
				}
			}
		})
	}
}

func (e *env) lease(t testing.TB, c *redis.Client, holder string, ttl time.Duration) *Lease {
	t.Helper()
	l, err := NewLease(LeaseConfig{Client: c, Prefix: e.prefix, Name: "audit-sinks", TTL: ttl, Holder: holder})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLeaseCursorRefusesAnEndedTerm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := e.client(t)
	l := e.lease(t, c, "a", time.Second)
	if err := c.Set(ctx, l.Key(), "a:term1", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	cur := NewLeaseCursor(l, "file", "a:term1")
	if n, err := cur.Load(ctx); err != nil || n != 0 {
		t.Fatalf("Load on a fresh cursor = %d, %v; want 0", n, err)
	}
	if err := cur.Save(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, l.Key(), "b:term2", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := cur.Save(ctx, 9); !errors.Is(err, ErrNotLeader) {
		t.Errorf("Save after the lease moved on = %v, want ErrNotLeader", err)
	}
	if n, err := NewLeaseCursor(l, "file", "b:term2").Load(ctx); err != nil || n != 7 {
		t.Errorf("next holder loads %d, %v; want 7", n, err)
	}
}

// sinkReplica is one replica running the file sink under the shared lease.
type sinkReplica struct {
	path   string
	cancel context.CancelFunc
	done   chan struct{}
	client *redis.Client
}

func (e *env) sinkReplica(t *testing.T, a *Audit, holder string, ttl time.Duration) *sinkReplica {
	t.Helper()
	c := e.client(t)
	path := filepath.Join(t.TempDir(), holder+".ndjson")
	fs, err := sink.NewFile(sink.FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	l := e.lease(t, c, holder, ttl)
	ctx, cancel := context.WithCancel(context.Background())
	r := &sinkReplica{path: path, cancel: cancel, done: make(chan struct{}), client: c}
	cfg := sink.Config{Name: "file", Source: a, Sink: fs, Batch: 5, PollInterval: 10 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	cursor := func(name, term string) sink.CursorStore { return NewLeaseCursor(l, name, term) }
	go func() { defer close(r.done); sink.RunLeased(ctx, l, cursor, []sink.Config{cfg}, nil) }()
	t.Cleanup(r.stop)
	return r
}

func (r *sinkReplica) stop() {
	r.cancel()
	<-r.done
}

// seqs returns the seqs in the replica's file, in file order.
func (r *sinkReplica) seqs(t *testing.T) []int64 {
	t.Helper()
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []int64
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var v struct {
			Seq int64 `json:"seq"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", r.path, err)
		}
		out = append(out, v.Seq)
	}
	return out
}

func appendN(t *testing.T, a *Audit, from, n int) {
	t.Helper()
	for i := range n {
		if _, err := a.Append(context.Background(), event("grant.issued", fmt.Sprintf("g%d", from+i))); err != nil {
			t.Fatal(err)
		}
	}
}

// delivered counts how often each seq appears across the replicas' files.
func delivered(t *testing.T, rs ...*sinkReplica) map[int64]int {
	got := map[int64]int{}
	for _, r := range rs {
		for _, s := range r.seqs(t) {
			got[s]++
		}
	}
	return got
}

func allDelivered(t *testing.T, n int64, rs ...*sinkReplica) bool {
	got := delivered(t, rs...)
	for s := int64(1); s <= n; s++ {
		if got[s] == 0 {
			return false
		}
	}
	return true
}

func TestRunSinksOneReplicaAtATime(t *testing.T) {
	e := newEnv(t)
	a := e.audit(t)
	r1 := e.sinkReplica(t, a, "r1", 3*time.Second)
	r2 := e.sinkReplica(t, a, "r2", 3*time.Second)
	for i := range 6 {
		appendN(t, a, i*10, 10)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "60 events delivered", func() bool { return allDelivered(t, 60, r1, r2) })
	for s, n := range delivered(t, r1, r2) {
		if n != 1 {
			t.Errorf("seq %d delivered %d times, want once", s, n)
		}
	}
	if len(r1.seqs(t)) > 0 && len(r2.seqs(t)) > 0 {
		t.Errorf("both replicas delivered (%d and %d events) while both were live", len(r1.seqs(t)), len(r2.seqs(t)))
	}
}

func TestRunSinksTakeOverFromSharedCursor(t *testing.T) {
	e := newEnv(t)
	a := e.audit(t)
	const ttl = 600 * time.Millisecond
	r1 := e.sinkReplica(t, a, "r1", ttl)
	r2 := e.sinkReplica(t, a, "r2", ttl)
	appendN(t, a, 0, 20)
	waitFor(t, "20 events delivered", func() bool { return allDelivered(t, 20, r1, r2) })
	leader, other := r1, r2
	if len(r1.seqs(t)) == 0 {
		leader, other = r2, r1
	}
	if len(other.seqs(t)) != 0 {
		t.Fatalf("both replicas delivered before the kill")
	}
	// The leader saves the shared cursor after it delivers: wait for the
	// save, so the kill tests a takeover from a saved cursor.
	shared := NewLeaseCursor(e.lease(t, e.client(t), "x", ttl), "file", "")
	waitFor(t, "the shared cursor at 20", func() bool {
		c, err := shared.Load(context.Background())
		return err == nil && c == 20
	})
	// Kill the leader: its connection goes away first, so it cannot
	// release the lease, which must expire.
	killed := time.Now()
	leader.client.Close()
	leader.stop()
	cursor, err := shared.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cursor != 20 {
		t.Fatalf("shared cursor after the kill = %d, want 20", cursor)
	}
	appendN(t, a, 20, 15)
	waitFor(t, "35 events delivered", func() bool { return allDelivered(t, 35, leader, other) })
	if took := time.Since(killed); took < ttl/2 {
		t.Errorf("took over after %v, before the lease could expire (%v)", took, ttl)
	}
	got := other.seqs(t)
	if len(got) == 0 || got[0] != cursor+1 {
		t.Errorf("new leader delivered %v, want it to start at seq %d", got, cursor+1)
	}
	for s, n := range delivered(t, leader, other) {
		if n != 1 {
			t.Errorf("seq %d delivered %d times, want once", s, n)
		}
	}
}

func TestLeaseReleasedOnStopHandsOver(t *testing.T) {
	e := newEnv(t)
	// A TTL far longer than the test: only a release lets the second in.
	mk := func(holder string) *Lease {
		l, err := NewLease(LeaseConfig{Client: e.client(t), Prefix: e.prefix, Name: "handover", TTL: time.Minute,
			Retry: 10 * time.Millisecond, Holder: holder})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	terms := make(chan string, 4)
	run := func(l *Lease, holder string) (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Run(ctx, func(ctx context.Context, token string) { terms <- holder; <-ctx.Done() })
		}()
		return func() { cancel(); <-done }
	}
	stopA := run(mk("a"), "a")
	if got := <-terms; got != "a" {
		t.Fatalf("first holder %q, want a", got)
	}
	stopB := run(mk("b"), "b")
	defer stopB()
	select {
	case got := <-terms:
		t.Fatalf("%q took a held lease", got)
	case <-time.After(100 * time.Millisecond):
	}
	stopA()
	select {
	case got := <-terms:
		if got != "b" {
			t.Errorf("after a released, holder %q, want b", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b never took the released lease")
	}
}

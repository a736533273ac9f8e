package sink

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// gatedSource hands out only events up to limit, as a trail whose sink
// lags behind its newest checkpoint would, and counts the reads.
type gatedSource struct {
	s     *audit.Store
	limit atomic.Int64
	reads atomic.Int64
}

func (g *gatedSource) After(ctx context.Context, after int64, n int) ([]audit.Record, error) {
	g.reads.Add(1)
	recs, err := g.s.After(ctx, after, n)
	out := recs[:0]
	for _, r := range recs {
		if r.Seq <= g.limit.Load() {
			out = append(out, r)
		}
	}
	return out, err
}

// fileLine is one line of a file sink: an event or a pushed checkpoint.
type fileLine struct {
	Type string `json:"type"`
	Seq  int64  `json:"seq"`
	audit.Checkpoint
}

func readFileLines(t *testing.T, path string) []fileLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []fileLine
	for _, l := range lines(b) {
		var v fileLine
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, v)
	}
	return out
}

// The file sink receives the newest signed checkpoint once, and only after
// every event it covers; a trail that grows gets its new checkpoint too.
func TestRunnerPushesCheckpointsAfterTheirEvents(t *testing.T) {
	s := openStore(t)
	appendEvents(t, s, 10)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.ndjson")
	fs, err := NewFile(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	src := &gatedSource{s: s}
	src.limit.Store(5)
	r := newRunner(t, src, fs, dir, func(c *Config) {
		c.Checkpoint = s.LatestCheckpoint
		c.CheckpointEvery = time.Millisecond
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "the cursor at 5 and three idle reads after it", func() bool {
		if r.Cursor() < 5 {
			src.reads.Store(0)
			return false
		}
		return src.reads.Load() >= 3
	})
	if n := r.CheckpointsPushed(); n != 0 {
		t.Fatalf("%d checkpoints pushed while the sink held 5 of the 10 events they cover", n)
	}

	src.limit.Store(10)
	waitFor(t, "one checkpoint pushed", func() bool { return r.CheckpointsPushed() == 1 })
	head, err := s.LatestCheckpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// More idle rounds: the same checkpoint is not pushed again.
	src.reads.Store(0)
	waitFor(t, "three more idle reads", func() bool { return src.reads.Load() >= 3 })

	appendEvents(t, s, 3)
	src.limit.Store(13)
	// A checkpoint asked for while the three were appended may be pushed
	// first (once its events are delivered); the size-13 one follows.
	var ls []fileLine
	waitFor(t, "the size-13 checkpoint pushed", func() bool {
		ls = readFileLines(t, path)
		return len(ls) > 0 && ls[len(ls)-1].Type == CheckpointType && ls[len(ls)-1].Size == 13
	})

	var events, cps []int
	for i, l := range ls {
		if l.Type == CheckpointType {
			cps = append(cps, i)
		} else {
			events = append(events, i)
		}
	}
	if len(events) != 13 || len(cps) < 2 || len(cps) > 4 {
		t.Fatalf("file holds %d events and %d checkpoints, want 13 and 2 to 4", len(events), len(cps))
	}
	for k, i := range cps {
		cp := ls[i].Checkpoint
		parsed, err := audit.ParseCheckpoint([]byte(cp.Note), s.VerifierKeys()...)
		if err != nil {
			t.Fatalf("pushed checkpoint %d does not verify with the trail's keys: %v", k, err)
		}
		if parsed.Size != cp.Size || parsed.RootHash != cp.RootHash {
			t.Errorf("pushed checkpoint %d: members (size %d root %s) differ from its note (%d %s)", k, cp.Size, cp.RootHash, parsed.Size, parsed.RootHash)
		}
		if k > 0 && cp.Size <= ls[cps[k-1]].Size {
			t.Errorf("checkpoint %d has size %d after one of size %d: pushed twice or out of order", k, cp.Size, ls[cps[k-1]].Size)
		}
		covered := 0
		for _, j := range events {
			if ls[j].Seq <= cp.Size && j < i {
				covered++
			}
		}
		if int64(covered) != cp.Size {
			t.Errorf("checkpoint of size %d is at line %d after only %d of its events", cp.Size, i, covered)
		}
	}
	if first := ls[cps[0]].Checkpoint; first.Note != head.Note || first.Size != 10 {
		t.Errorf("first pushed checkpoint has size %d, want the head of size 10", first.Size)
	}
}

// A failing push is tried again later and never holds up the events.
func TestRunnerRetriesCheckpointPushWithoutBlockingEvents(t *testing.T) {
	s := openStore(t)
	appendEvents(t, s, 4)
	c := &cpCollector{failFirst: 2}
	r := newRunner(t, s, c, t.TempDir(), func(cfg *Config) {
		cfg.Checkpoint = s.LatestCheckpoint
		cfg.CheckpointEvery = time.Millisecond
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "a checkpoint pushed after two failures", func() bool { return r.CheckpointsPushed() == 1 })
	appendEvents(t, s, 4)
	waitFor(t, "the next events delivered", func() bool { return r.Cursor() == 8 })
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tries < 3 || len(c.cps) < 1 || c.cps[0].Size != 4 {
		t.Errorf("%d tries, pushed %v; want the size-4 checkpoint after 2 failures", c.tries, c.cps)
	}
}

type cpCollector struct {
	collector
	mu        sync.Mutex
	failFirst int
	tries     int
	cps       []audit.Checkpoint
}

func (c *cpCollector) DeliverCheckpoint(_ context.Context, cp audit.Checkpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tries++
	if c.tries <= c.failFirst {
		return io.ErrUnexpectedEOF
	}
	c.cps = append(c.cps, cp)
	return nil
}

// A webhook receiver gets the checkpoint as a signed POST whose body says
// "type":"audit.checkpoint" and whose Webhook-Id is its CheckpointID.
func TestWebhookDeliversSignedCheckpoint(t *testing.T) {
	secret := []byte("0123456789abcdef-test-secret")
	type got struct {
		id   string
		body []byte
		err  error
	}
	ch := make(chan got, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Get(HeaderWebhookID), body, VerifyWebhook(secret, r.Header, body, time.Now(), time.Minute)}
	}))
	defer srv.Close()
	s := openStore(t)
	appendEvents(t, s, 3)
	cp, err := s.LatestCheckpoint(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.DeliverCheckpoint(t.Context(), cp); err != nil {
		t.Fatal(err)
	}
	g := <-ch
	if g.err != nil {
		t.Errorf("signature: %v", g.err)
	}
	if g.id != CheckpointID(cp) {
		t.Errorf("Webhook-Id %q, want %q", g.id, CheckpointID(cp))
	}
	var v fileLine
	if err := json.Unmarshal(g.body, &v); err != nil || v.Type != CheckpointType || v.Note != cp.Note || v.Size != 3 {
		t.Errorf("body %s (%v): want type %s with the size-3 note", g.body, err, CheckpointType)
	}
	if _, err := audit.ParseCheckpoint([]byte(v.Note), s.VerifierKeys()...); err != nil {
		t.Errorf("pushed note does not verify: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

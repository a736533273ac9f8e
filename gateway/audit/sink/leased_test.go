package sink

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// termLeaser grants the lease for the terms named, one after the other;
// each term ends when its end channel is closed.
type termLeaser struct {
	terms []string
	ends  []chan struct{}
}

func (l *termLeaser) Run(ctx context.Context, lead func(ctx context.Context, term string)) {
	for i, term := range l.terms {
		tctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-l.ends[i]:
			case <-tctx.Done():
			}
			cancel()
		}()
		lead(tctx, term)
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
	<-ctx.Done()
}

type closeCounter struct {
	*collector
	mu     sync.Mutex
	closes int
}

func (c *closeCounter) Close() error { c.mu.Lock(); defer c.mu.Unlock(); c.closes++; return nil }

func TestRunLeasedResumesEachTermFromTheSharedCursor(t *testing.T) {
	s := openStore(t)
	evs := appendEvents(t, s, 8)
	shared := &memCursor{}
	var mu sync.Mutex
	var asked []string
	cursor := func(name, term string) CursorStore {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, name+"@"+term)
		return shared
	}
	l := &termLeaser{terms: []string{"t1", "t2"}, ends: []chan struct{}{make(chan struct{}), make(chan struct{})}}
	sk := &closeCounter{collector: &collector{}}
	cfg := Config{Name: "test", Source: s, Sink: sk, Batch: 3, PollInterval: 5 * time.Millisecond,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); RunLeased(ctx, l, cursor, []Config{cfg}, nil) }()

	waitCursor := func(seq int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if n, _ := shared.Load(ctx); n >= seq {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cursor never reached %d", seq)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitCursor(8)
	close(l.ends[0]) // term 1 ends; term 2 starts from the cursor
	appendEvents(t, s, 4)
	waitCursor(12)
	cancel()
	<-done

	if got := len(sk.ids()); got != 12 {
		t.Errorf("delivered %d events, want 12 (each once)", got)
	}
	if got := sk.ids()[:8]; !slices.Equal(got, idsOf(evs)) {
		t.Errorf("first term delivered %v, want %v", got, idsOf(evs))
	}
	if want := []string{"test@t1", "test@t2"}; !slices.Equal(asked, want) {
		t.Errorf("cursors asked for %v, want %v", asked, want)
	}
	if sk.closes != 1 {
		t.Errorf("sink closed %d times, want once, when RunLeased returns", sk.closes)
	}
}

func idsOf(evs []audit.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.ID)
	}
	return out
}

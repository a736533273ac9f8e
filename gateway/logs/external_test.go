package logs

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

// fakeSequencer numbers entries like a shared feed and hands them to the
// hubs (replicas) it feeds, the way a feed reader would.
type fakeSequencer struct {
	mu   sync.Mutex
	last map[Stream]int64
	out  [][]Entry
}

func (f *fakeSequencer) Publish(_ context.Context, es []Entry) ([]Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last = map[Stream]int64{}
	}
	for i := range es {
		f.last[es[i].Stream()]++
		es[i].Seq = f.last[es[i].Stream()]
	}
	f.out = append(f.out, slices.Clone(es))
	return es, nil
}

func withSeqs(es []Entry, ss ...int64) []Entry {
	for i := range es {
		es[i].Seq = ss[i]
	}
	return es
}

func TestSequencerPublishGoesThroughFeed(t *testing.T) {
	seq := &fakeSequencer{}
	h := newTestHub(t, HubConfig{Sequencer: seq})
	v := subscribe(t, h, SubscribeOptions{})
	out := publish(t, h, makeEntries("a", 3))
	if got, want := seqs(out), seqRange(1, 3); !slices.Equal(got, want) {
		t.Fatalf("Publish seqs = %v, want %v (from the sequencer)", got, want)
	}
	noMessage(t, v) // not delivered until the feed's reader hands them over
	n, err := h.PublishAssigned(context.Background(), seq.out[0])
	if err != nil || n != 3 {
		t.Fatalf("PublishAssigned = %d, %v; want 3", n, err)
	}
	if got := seqs(recvEntries(t, v, 3)); !slices.Equal(got, seqRange(1, 3)) {
		t.Errorf("viewer seqs = %v", got)
	}
}

func TestPublishAssignedOrderDuplicatesAndGaps(t *testing.T) {
	ctx := context.Background()
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})
	tests := []struct {
		name      string
		in        []int64
		delivered int
		gap       [2]int64
		live      []int64
	}{
		{"first batch", []int64{1, 2, 3}, 3, [2]int64{}, []int64{1, 2, 3}},
		{"overlap is skipped", []int64{2, 3, 4}, 1, [2]int64{}, []int64{4}},
		{"all duplicates", []int64{1, 4}, 0, [2]int64{}, nil},
		{"jump", []int64{5, 9, 10}, 3, [2]int64{6, 8}, []int64{9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := h.PublishAssigned(ctx, withSeqs(makeEntries(tt.name, len(tt.in)), tt.in...))
			if err != nil || n != tt.delivered {
				t.Fatalf("PublishAssigned = %d, %v; want %d", n, err, tt.delivered)
			}
			if tt.gap[0] != 0 {
				// The entries before the jump, then the gap, then the rest.
				if got := seqs(recvEntries(t, v, 1)); got[0] != tt.in[0] {
					t.Fatalf("before the gap: %v", got)
				}
				w := decode(t, recv(t, v))
				if w.Type != TypeGap || w.FromSeq != tt.gap[0] || w.ToSeq != tt.gap[1] || w.Reason != "retention" {
					t.Fatalf("got %+v, want gap %v retention", w, tt.gap)
				}
			}
			if tt.live != nil {
				if got := seqs(recvEntries(t, v, len(tt.live))); !slices.Equal(got, tt.live) {
					t.Errorf("live seqs = %v, want %v", got, tt.live)
				}
			}
			noMessage(t, v)
		})
	}
	// The ring restarted at the jump so it stays gapless: a resume from
	// before the jump is told about the gap.
	r := subscribe(t, h, SubscribeOptions{After: 3})
	w := decode(t, recv(t, r))
	if w.Type != TypeGap || w.FromSeq != 4 || w.ToSeq != 8 {
		t.Errorf("resume after 3: %+v, want gap 4..8", w)
	}
	if got := seqs(recvEntries(t, r, 2)); !slices.Equal(got, []int64{9, 10}) {
		t.Errorf("resume after 3 entries = %v, want [9 10]", got)
	}
	if _, err := h.PublishAssigned(ctx, makeEntries("x", 1)); !errors.Is(err, ErrUnsequenced) {
		t.Errorf("entry without seq: err = %v, want ErrUnsequenced", err)
	}
}

func TestEndViewersKeepsHubOpen(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})
	down := errors.New("feed down")
	if n := h.EndViewers(down); n != 1 {
		t.Errorf("EndViewers = %d, want 1", n)
	}
	<-v.Done()
	if !errors.Is(v.Err(), down) {
		t.Errorf("viewer err = %v, want the feed error", v.Err())
	}
	v.Close() // idempotent after being ended
	w := subscribe(t, h, SubscribeOptions{})
	publish(t, h, makeEntries("after", 2))
	if got := seqs(recvEntries(t, w, 2)); !slices.Equal(got, []int64{1, 2}) {
		t.Errorf("new viewer after EndViewers got %v", got)
	}
	if infos := h.Streams(); len(infos) != 1 || infos[0].Viewers != 1 {
		t.Errorf("streams = %+v, want one stream with one viewer", infos)
	}
}

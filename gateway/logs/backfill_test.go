package logs

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestResume(t *testing.T) {
	h := newTestHub(t, HubConfig{Retention: map[string]Retention{"prod": {MaxEntries: 5}}})
	publish(t, h, makeEntries("x", 20)) // seqs 1..20, 16..20 kept

	tests := []struct {
		name     string
		after    int64
		wantGap  *wireMessage
		wantSeqs []int64
	}{
		{"within the ring", 16, nil, []int64{17, 18, 19, 20}},
		{"just before the ring", 15, nil, seqRange(16, 20)},
		{"older than retention", 3, &wireMessage{Type: TypeGap, FromSeq: 4, ToSeq: 15, Reason: "retention"}, seqRange(16, 20)},
		{"up to date", 20, nil, nil},
		{"ahead of the stream", 25, &wireMessage{Type: TypeGap, FromSeq: 21, ToSeq: 25, Reason: "cursor_ahead"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := subscribe(t, h, SubscribeOptions{After: tt.after})
			if tt.wantGap != nil {
				got := decode(t, recv(t, v))
				if got.Type != tt.wantGap.Type || got.FromSeq != tt.wantGap.FromSeq ||
					got.ToSeq != tt.wantGap.ToSeq || got.Reason != tt.wantGap.Reason {
					t.Errorf("first message = %+v, want %+v", got, *tt.wantGap)
				}
			}
			if got := seqs(recvEntries(t, v, len(tt.wantSeqs))); !slices.Equal(got, tt.wantSeqs) {
				t.Errorf("backfill seqs = %v, want %v", got, tt.wantSeqs)
			}
			noMessage(t, v)
			v.Close()
		})
	}

	// After a resume the viewer continues live.
	v := subscribe(t, h, SubscribeOptions{After: 18})
	publish(t, h, makeEntries("y", 2))
	if got, want := seqs(recvEntries(t, v, 4)), seqRange(19, 22); !slices.Equal(got, want) {
		t.Errorf("resume then live = %v, want %v", got, want)
	}
}

func TestResumeWhenEverythingExpired(t *testing.T) {
	clock := fakeClock(t)
	h := newTestHub(t, HubConfig{Retention: map[string]Retention{"": {MaxAge: time.Minute}}, Now: clock.Now})
	publish(t, h, makeEntries("x", 3))
	clock.Advance(2 * time.Minute)
	v := subscribe(t, h, SubscribeOptions{After: 1})
	w := decode(t, recv(t, v))
	if w.Type != TypeGap || w.FromSeq != 2 || w.ToSeq != 3 || w.Reason != "retention" {
		t.Errorf("message = %+v, want gap 2..3 (retention)", w)
	}
	publish(t, h, makeEntries("y", 1))
	if got := seqs(recvEntries(t, v, 1)); !slices.Equal(got, []int64{4}) {
		t.Errorf("live after gap = %v, want [4]", got)
	}
}

func TestBackfillLinesAndSince(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	es := filterEntries() // Time = t0 + i ms, seqs 1..6
	publish(t, h, es)
	t0 := es[0].Time
	tests := []struct {
		name string
		opts SubscribeOptions
		want []int64
	}{
		{"last 2 lines", SubscribeOptions{Lines: 2}, []int64{5, 6}},
		{"more lines than kept", SubscribeOptions{Lines: 100}, seqRange(1, 6)},
		{"last 2 warn+ lines", SubscribeOptions{Lines: 2, Filter: Filter{MinLevel: LevelWarn}}, []int64{4, 5}},
		{"since", SubscribeOptions{Since: t0.Add(3 * time.Millisecond)}, []int64{4, 5, 6}},
		{"since is inclusive", SubscribeOptions{Since: t0.Add(5 * time.Millisecond)}, []int64{6}},
		{"since and lines", SubscribeOptions{Since: t0.Add(time.Millisecond), Lines: 2}, []int64{5, 6}},
		{"since and filter", SubscribeOptions{Since: t0.Add(2 * time.Millisecond), Filter: Filter{Grep: "GET"}}, []int64{4}},
		{"since in the future", SubscribeOptions{Since: t0.Add(time.Hour)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := subscribe(t, h, tt.opts)
			if got := seqs(recvEntries(t, v, len(tt.want))); !slices.Equal(got, tt.want) {
				t.Errorf("backfill = %v, want %v", got, tt.want)
			}
			noMessage(t, v)
			v.Close()
		})
	}
}

func TestLargeBatchesAreSplitIntoMessages(t *testing.T) {
	h := newTestHub(t, HubConfig{QueueSize: 2})
	publish(t, h, makeEntries("x", 1200))
	v := subscribe(t, h, SubscribeOptions{Lines: 1100})
	var sizes []int
	var got []int64
	for len(got) < 1100 {
		w := decode(t, recv(t, v))
		sizes = append(sizes, len(w.Entries))
		got = append(got, seqs(w.Entries)...)
	}
	// A backfill comes in pages of backfillPage.
	if want := slices.Repeat([]int{backfillPage}, 1100/backfillPage); !slices.Equal(sizes, want) {
		t.Errorf("message sizes = %v, want %v", sizes, want)
	}
	if want := seqRange(101, 1200); !slices.Equal(got, want) {
		t.Errorf("backfill is not 101..1200")
	}
	if d := v.Stats().Dropped; d != 0 {
		t.Errorf("backfill larger than QueueSize dropped %d entries", d)
	}

	// A live batch is split the same way.
	h = newTestHub(t, HubConfig{})
	v = subscribe(t, h, SubscribeOptions{})
	publish(t, h, makeEntries("y", 1001))
	sizes = nil
	for n := 0; n < 1001; {
		w := decode(t, recv(t, v))
		sizes = append(sizes, len(w.Entries))
		n += len(w.Entries)
	}
	if want := []int{500, 500, 1}; !slices.Equal(sizes, want) {
		t.Errorf("live message sizes = %v, want %v", sizes, want)
	}
}

func TestRetention(t *testing.T) {
	clock := fakeClock(t)
	one := makeEntries("x", 1)[0]
	size := int64(entrySize(&one))
	tests := []struct {
		name      string
		ret       Retention
		advance   time.Duration // clock step between publishes
		wantFirst int64
	}{
		{"by count", Retention{MaxEntries: 3}, 0, 8},
		{"by bytes", Retention{MaxBytes: 4 * size}, 0, 7},
		{"by age", Retention{MaxAge: 5 * time.Minute}, time.Minute, 5},
		{"defaults keep all", Retention{}, time.Minute, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHub(t, HubConfig{Retention: map[string]Retention{"": tt.ret}, Now: clock.Now})
			for range 10 {
				publish(t, h, makeEntries("x", 1))
				clock.Advance(tt.advance)
			}
			info := h.Streams()[0]
			if info.FirstSeq != tt.wantFirst || info.LastSeq != 10 || info.Entries != int(10-tt.wantFirst+1) {
				t.Errorf("kept %d..%d (%d entries), want %d..10", info.FirstSeq, info.LastSeq, info.Entries, tt.wantFirst)
			}
			if info.Bytes != int64(info.Entries)*size {
				t.Errorf("Bytes = %d, want %d", info.Bytes, int64(info.Entries)*size)
			}
		})
	}
}

func TestRetentionPerEnv(t *testing.T) {
	h := newTestHub(t, HubConfig{Retention: map[string]Retention{"": {MaxEntries: 2}, "prod": {MaxEntries: 4}}})
	publish(t, h, makeEntries("x", 10))
	dev := makeEntries("x", 10)
	for i := range dev {
		dev[i].Env = "dev"
	}
	publish(t, h, dev)
	got := map[string]int{}
	for _, info := range h.Streams() {
		got[info.Stream.Env] = info.Entries
	}
	if got["prod"] != 4 || got["dev"] != 2 {
		t.Errorf("entries kept = %v, want prod:4 dev:2", got)
	}
}

func TestSampling(t *testing.T) {
	clock := fakeClock(t)
	h := newTestHub(t, HubConfig{MaxViewerRate: 10, Now: clock.Now})
	v := subscribe(t, h, SubscribeOptions{})

	publish(t, h, makeEntries("burst", 100))
	w := decode(t, recv(t, v))
	if w.Type != TypeNotice || w.Code != "sampling" || !strings.Contains(w.Message, "10 entries/s") {
		t.Fatalf("first message = %+v, want a sampling notice", w)
	}
	if got := len(recvEntries(t, v, 10)); got != 10 {
		t.Errorf("delivered %d of the first burst, want 10", got)
	}

	// The next second keeps every 10th entry (stride from the last rate).
	clock.Advance(time.Second)
	publish(t, h, makeEntries("burst", 100))
	got := seqs(recvEntries(t, v, 10))
	if want := []int64{101, 111, 121, 131, 141, 151, 161, 171, 181, 191}; !slices.Equal(got, want) {
		t.Errorf("sampled seqs = %v, want %v", got, want)
	}

	// A quiet second ends sampling, with a notice saying what was skipped.
	clock.Advance(2 * time.Second)
	publish(t, h, makeEntries("calm", 3))
	w = decode(t, recv(t, v))
	if w.Type != TypeNotice || w.Code != "sampling_end" || !strings.Contains(w.Message, "180 entries were skipped") {
		t.Errorf("message = %+v, want a sampling_end notice", w)
	}
	recvEntries(t, v, 3)
	v.Close()
	if s := v.Stats(); s.Sampled != 180 || s.Entries != 23 {
		t.Errorf("Stats Sampled=%d Entries=%d, want 180, 23", s.Sampled, s.Entries)
	}
}

func TestSamplingNoticeForLateJoiner(t *testing.T) {
	clock := fakeClock(t)
	h := newTestHub(t, HubConfig{MaxViewerRate: 10, Now: clock.Now})
	first := subscribe(t, h, SubscribeOptions{})
	publish(t, h, makeEntries("burst", 50))
	late := subscribe(t, h, SubscribeOptions{})
	if w := decode(t, recv(t, late)); w.Code != "sampling" {
		t.Errorf("late joiner's first message = %+v, want the sampling notice", w)
	}
	_ = first
}

// A mass resume (every viewer reconnecting after an outage) encodes at most
// MaxBackfillEncoders backfill pages at once, and each viewer still gets its
// whole backfill, in order, ahead of the live entries.
func TestMassResumeEncodesBoundedBackfill(t *testing.T) {
	const viewers, kept, limit = 40, 3000, 2
	// The ring has room for the live entry: the backfill is read from the
	// ring as it is sent, so an entry trimmed before that would be a gap
	// (TestBackfillOverwrittenWhileSlowIsAGap).
	h := newTestHub(t, HubConfig{MaxBackfillEncoders: limit, Retention: map[string]Retention{"prod": {MaxEntries: 2 * kept}}})
	publish(t, h, makeEntries("x", kept))
	vs := make([]*Viewer, viewers)
	for i := range vs {
		vs[i] = subscribe(t, h, SubscribeOptions{After: 0, Lines: kept})
	}
	publish(t, h, makeEntries("live", 1)) // seq kept+1, after every backfill
	var wg sync.WaitGroup
	got := make([][]int64, viewers)
	for i, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range v.Messages() {
				var w wireMessage
				if err := json.Unmarshal(m.Data, &w); err != nil {
					t.Error(err)
					return
				}
				for _, e := range w.Entries {
					got[i] = append(got[i], e.Seq)
				}
				if len(got[i]) == kept+1 {
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range got {
		if !slices.Equal(got[i], seqRange(1, kept+1)) {
			t.Fatalf("viewer %d got %d entries (%v…), want seqs 1..%d in order", i, len(got[i]), got[i][:min(len(got[i]), 5)], kept+1)
		}
	}
	now, peak := h.BackfillEncoders()
	if now != 0 || peak < 1 || peak > limit {
		t.Errorf("backfill encoders now=%d peak=%d, want 0 and 1..%d", now, peak, limit)
	}
}

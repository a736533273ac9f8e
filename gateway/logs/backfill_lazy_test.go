package logs

import (
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"unsafe"
)

// A slow viewer's backfill is read from the ring a page at a time as it is
// sent. When the ring drops entries of the backfill before their page was
// read, the viewer gets a "retention" gap for exactly those seqs, then the
// rest of the backfill and the live entries: in seq order, none twice, none
// skipped without a word, and the view's record does not span the gap.
func TestBackfillOverwrittenWhileSlowIsAGap(t *testing.T) {
	const kept = 1500 // three backfill pages
	tests := []struct {
		name     string
		publish  int   // entries published while the viewer holds page 2
		gapTo    int64 // the gap is 1001..gapTo
		wantRest []int64
	}{
		// The ring then holds 1201..2700: page 3 starts at 1201.
		{"part of the rest", 1200, 1200, seqRange(1201, 1500)},
		// The ring then holds 3001..4500: nothing of page 3 is left.
		{"all of the rest", 3000, 1500, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newTestHub(t, HubConfig{QueueSize: 64, Retention: map[string]Retention{"prod": {MaxEntries: kept}}})
				publish(t, h, makeEntries("old", kept))
				v := subscribe(t, h, SubscribeOptions{Lines: kept})
				if got := seqs(recvEntries(t, v, 500)); !slices.Equal(got, seqRange(1, 500)) {
					t.Fatalf("page 1 = %v…, want 1..500", got[:3])
				}
				// The pump has read page 2 and waits to hand it over.
				synctest.Wait()
				publish(t, h, makeEntries("live", tt.publish))
				last := int64(kept + tt.publish)
				want := slices.Concat(seqRange(501, 1000), tt.wantRest, seqRange(kept+1, last))

				var got []int64
				var gaps []wireMessage
				for len(got) < len(want) {
					w := decode(t, recv(t, v))
					switch w.Type {
					case TypeEntries:
						got = append(got, seqs(w.Entries)...)
					case TypeGap:
						if len(got) != 500 {
							t.Errorf("gap after %d entries, want after page 2 (500)", len(got))
						}
						gaps = append(gaps, w)
					default:
						t.Fatalf("unexpected %s", m2s(w))
					}
				}
				if len(gaps) != 1 || gaps[0].FromSeq != 1001 || gaps[0].ToSeq != tt.gapTo || gaps[0].Reason != "retention" {
					t.Errorf("gaps = %+v, want one retention gap 1001..%d", gaps, tt.gapTo)
				}
				if !slices.Equal(got, want) {
					t.Errorf("after page 1 got %d entries, want %d: 501..1000, %d..1500, then live %d..%d", len(got), len(want), tt.gapTo+1, kept+1, last)
				}
				v.Close()
				st := v.Stats()
				if st.Entries != int64(500+len(want)) || st.Dropped != 0 {
					t.Errorf("Stats Entries=%d Dropped=%d, want %d, 0", st.Entries, st.Dropped, 500+len(want))
				}
				// The backfill's range stops before the gap.
				rs := st.Record.Ranges
				if len(rs) == 0 || rs[0] != (SeqRange{Epoch: 0, From: 1, To: 1000}) {
					t.Fatalf("ranges = %+v, want the backfill's first as 0:1..1000", rs)
				}
				for _, r := range rs[1:] {
					if r.From <= tt.gapTo {
						t.Errorf("range %+v spans the gap 1001..%d", r, tt.gapTo)
					}
				}
			})
		})
	}
}

func m2s(w wireMessage) string { return w.Type + " " + w.Reason + " " + w.Code }

// A filtered backfill is read lazily too: the last Lines matching entries,
// in order, with a gap for the ones overwritten first.
func TestBackfillLazyWithFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, HubConfig{Retention: map[string]Retention{"prod": {MaxEntries: 3000}}})
		es := makeEntries("old", 3000)
		for i := range es {
			if i%2 == 1 {
				es[i].Level = LevelError // seqs 2, 4, ... 3000
			}
		}
		publish(t, h, es)
		v := subscribe(t, h, SubscribeOptions{Lines: 1200, Filter: Filter{MinLevel: LevelError}})
		// The last 1200 errors are seqs 602, 604, ..., 3000.
		if got := seqs(recvEntries(t, v, 500)); got[0] != 602 || got[499] != 1600 {
			t.Fatalf("page 1 = %d..%d, want 602..1600", got[0], got[499])
		}
		synctest.Wait()                          // page 2 (1602..2600) read
		publish(t, h, makeEntries("live", 2801)) // ring 2802..5801: info, filtered out
		if got := seqs(recvEntries(t, v, 500)); got[0] != 1602 || got[499] != 2600 {
			t.Fatalf("page 2 = %d..%d, want 1602..2600", got[0], got[499])
		}
		if w := decode(t, recv(t, v)); w.Type != TypeGap || w.FromSeq != 2601 || w.ToSeq != 2801 {
			t.Fatalf("message = %+v, want gap 2601..2801", w)
		}
		want := []int64{}
		for s := int64(2802); s <= 3000; s += 2 {
			want = append(want, s)
		}
		if got := seqs(recvEntries(t, v, len(want))); !slices.Equal(got, want) {
			t.Errorf("page 3 = %v, want the errors 2802..3000", got)
		}
		synctest.Wait()
		select {
		case m := <-v.Messages():
			t.Errorf("unexpected message %s", m.Data)
		default:
		}
	})
}

// What a resuming viewer holds while it waits to send its backfill: its
// next page encoded, and no copy of the ring. 50 viewers resume over a ring
// of 10,000 entries and read nothing; the heap they add (after a GC) stays
// far below one copy of the ring each, which is what a resume used to hold.
func TestResumeHoldsNoCopyOfTheBackfill(t *testing.T) {
	if raceEnabled {
		t.Skip("heap sizes under the race detector are not representative")
	}
	const viewers, kept = 50, 10000
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, HubConfig{Retention: map[string]Retention{"prod": {MaxEntries: kept}}})
		publish(t, h, makeEntries("old", kept))
		before := heapAfterGC()
		vs := make([]*Viewer, viewers)
		for i := range vs {
			vs[i] = subscribe(t, h, SubscribeOptions{After: 1})
		}
		synctest.Wait() // every pump has its first page encoded and waits
		held := (heapAfterGC() - before) / viewers
		copyOfRing := int64(kept * unsafe.Sizeof(Entry{}))
		page := int64(len(recv(t, vs[0]).Data))
		t.Logf("held per resuming viewer: %d B (one encoded page: %d B; a copy of the ring: %d B)", held, page, copyOfRing)
		if held > 2*page+copyOfRing/10 {
			t.Errorf("each resuming viewer holds %d B, want about one encoded page (%d B), far below a copy of the ring (%d B)", held, page, copyOfRing)
		}
	})
}

func heapAfterGC() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkResume measures one viewer resuming over a full ring of 10,000
// entries and reading its whole backfill: bytes and allocations per resume
// (B/op, allocs/op), and held-B the heap a resuming viewer holds before it
// sends anything (its first page encoded; formerly also a copy of the
// backfill's entries).
func BenchmarkResume(b *testing.B) {
	const kept = 10000
	h := newTestHub(b, HubConfig{Retention: map[string]Retention{"prod": {MaxEntries: kept}}})
	publish(b, h, makeEntries("old", kept))
	b.ReportAllocs()
	var held int64
	for i := 0; b.Loop(); i++ {
		v, err := h.Subscribe(testStream, SubscribeOptions{After: 1})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for m := range v.Messages() {
			n += m.Entries
			if n == kept-1 {
				break
			}
		}
		v.Close()
	}
	b.StopTimer()
	const viewers = 20
	before := heapAfterGC()
	vs := make([]*Viewer, viewers)
	for i := range vs {
		vs[i], _ = h.Subscribe(testStream, SubscribeOptions{After: 1})
	}
	// Wait until each pump has encoded its first page: receiving one
	// message from each proves it encoded it (and the next one, which it
	// holds now).
	for _, v := range vs {
		<-v.Messages()
	}
	held = (heapAfterGC() - before) / viewers
	for _, v := range vs {
		v.Close()
	}
	b.ReportMetric(float64(held), "held-B/viewer")
}

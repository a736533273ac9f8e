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
	const P = backfillPage
	const kept = 3 * P // three backfill pages
	tests := []struct {
		name     string
		publish  int64 // entries published while the viewer holds page 2
		gapTo    int64 // the gap is 2P+1..gapTo
		wantRest []int64
	}{
		// The ring then holds 2.4P+1..5.4P: page 3 starts at 2.4P+1.
		{"part of the rest", 12 * P / 5, 12 * P / 5, seqRange(12*P/5+1, kept)},
		// The ring then holds 6P+1..9P: nothing of page 3 is left.
		{"all of the rest", 6 * P, kept, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newTestHub(t, HubConfig{QueueSize: 64, Retention: map[string]Retention{"prod": {MaxEntries: kept}}})
				publish(t, h, makeEntries("old", kept))
				v := subscribe(t, h, SubscribeOptions{Lines: kept})
				if got := seqs(recvEntries(t, v, P)); !slices.Equal(got, seqRange(1, P)) {
					t.Fatalf("page 1 = %v…, want 1..%d", got[:3], P)
				}
				// The pump has read page 2 and waits to hand it over.
				synctest.Wait()
				publish(t, h, makeEntries("live", int(tt.publish)))
				last := kept + tt.publish
				want := slices.Concat(seqRange(P+1, 2*P), tt.wantRest, seqRange(kept+1, last))

				var got []int64
				var gaps []wireMessage
				for len(got) < len(want) {
					w := decode(t, recv(t, v))
					switch w.Type {
					case TypeEntries:
						got = append(got, seqs(w.Entries)...)
					case TypeGap:
						if len(got) != P {
							t.Errorf("gap after %d entries, want after page 2 (%d)", len(got), P)
						}
						gaps = append(gaps, w)
					default:
						t.Fatalf("unexpected %s", m2s(w))
					}
				}
				if len(gaps) != 1 || gaps[0].FromSeq != 2*P+1 || gaps[0].ToSeq != tt.gapTo || gaps[0].Reason != "retention" {
					t.Errorf("gaps = %+v, want one retention gap %d..%d", gaps, 2*P+1, tt.gapTo)
				}
				if !slices.Equal(got, want) {
					t.Errorf("after page 1 got %d entries, want %d: %d..%d, %d..%d, then live %d..%d",
						len(got), len(want), P+1, 2*P, tt.gapTo+1, kept, kept+1, last)
				}
				v.Close()
				st := v.Stats()
				if st.Entries != int64(P+len(want)) || st.Dropped != 0 {
					t.Errorf("Stats Entries=%d Dropped=%d, want %d, 0", st.Entries, st.Dropped, P+len(want))
				}
				// The backfill's range stops before the gap.
				rs := st.Record.Ranges
				if len(rs) == 0 || rs[0] != (SeqRange{Epoch: 0, From: 1, To: 2 * P}) {
					t.Fatalf("ranges = %+v, want the backfill's first as 0:1..%d", rs, 2*P)
				}
				for _, r := range rs[1:] {
					if r.From <= tt.gapTo {
						t.Errorf("range %+v spans the gap %d..%d", r, 2*P+1, tt.gapTo)
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
	const P = backfillPage
	synctest.Test(t, func(t *testing.T) {
		const n = 6 * P
		h := newTestHub(t, HubConfig{Retention: map[string]Retention{"prod": {MaxEntries: n}}})
		es := makeEntries("old", n)
		for i := range es {
			if i%2 == 1 {
				es[i].Level = LevelError // seqs 2, 4, ... n
			}
		}
		publish(t, h, es)
		lines := 12 * P / 5 // the last 2.4P errors: n-2(lines-1) .. n
		from := int64(n - 2*(lines-1))
		v := subscribe(t, h, SubscribeOptions{Lines: lines, Filter: Filter{MinLevel: LevelError}})
		evens := func(a, b int64) []int64 {
			var out []int64
			for s := a; s <= b; s += 2 {
				out = append(out, s)
			}
			return out
		}
		if got := seqs(recvEntries(t, v, P)); !slices.Equal(got, evens(from, from+2*(P-1))) {
			t.Fatalf("page 1 = %d..%d, want %d..%d", got[0], got[P-1], from, from+2*(P-1))
		}
		synctest.Wait() // page 2 read: the next P errors
		page2End := from + 2*(2*P-1)
		cut := page2End + (n-page2End)/2             // the ring drops up to here: halfway into page 3 (even)
		publish(t, h, makeEntries("live", int(cut))) // info: filtered out
		if got := seqs(recvEntries(t, v, P)); !slices.Equal(got, evens(from+2*P, page2End)) {
			t.Fatalf("page 2 = %d..%d, want %d..%d", got[0], got[P-1], from+2*P, page2End)
		}
		if w := decode(t, recv(t, v)); w.Type != TypeGap || w.FromSeq != page2End+1 || w.ToSeq != cut {
			t.Fatalf("message = %+v, want gap %d..%d", w, page2End+1, cut)
		}
		want := evens(cut+2, n)
		if len(want) == 0 {
			t.Fatal("nothing of page 3 is left: the test should keep part of it")
		}
		if got := seqs(recvEntries(t, v, len(want))); !slices.Equal(got, want) {
			t.Errorf("page 3 = %v, want the errors %d..%d", got, cut+2, n)
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

package logs

import (
	"context"
	"slices"
	"testing"
	"time"
)

// drainSeen reads every message v has queued (waiting for each batch
// published before it was called) and adds its entries to seen.
func drainSeen(t *testing.T, v *Viewer, seen *clientDigest, entries int) {
	t.Helper()
	for got := 0; got < entries; {
		m := recv(t, v)
		seen.add(t, m)
		got += m.Entries
	}
}

// checkReplayMatches closes v and checks that a replay of its record
// rebuilds exactly the seqs the viewer saw, with the viewer's digest.
func checkReplayMatches(t *testing.T, r RangeReader, v *Viewer, seen *clientDigest) {
	t.Helper()
	v.Close()
	st := v.Stats()
	_, got, digest := replayAll(t, r, st.Record)
	if !slices.Equal(got, seen.seqs) {
		t.Errorf("replay rebuilt %v; the viewer saw %v (record %+v)", got, seen.seqs, st.Record)
	}
	if digest != seen.hex() && slices.Equal(got, seen.seqs) {
		t.Errorf("replay digest %s, the viewer's %s", digest, seen.hex())
	}
}

// A batch the rate cap skipped entirely (no token left) sends the viewer
// nothing; the next delivered batch must still start a new range, or the
// replay shows the skipped entries.
func TestReplayOmitsABatchTheRateCapSkippedWhole(t *testing.T) {
	clock := fakeClock(t)
	h := newTestHub(t, HubConfig{MaxViewerRate: 10, Now: clock.Now})
	v := subscribe(t, h, SubscribeOptions{})
	var seen clientDigest
	publish(t, h, makeEntries("fits", 10)) // 1..10: spends every token
	drainSeen(t, v, &seen, 10)
	publish(t, h, makeEntries("skipped", 5)) // 11..15: no token, nothing sent
	clock.Advance(2 * time.Second)
	publish(t, h, makeEntries("later", 3)) // 16..18
	drainSeen(t, v, &seen, 3)
	if want := append(seqRange(1, 10), seqRange(16, 18)...); !slices.Equal(seen.seqs, want) {
		t.Fatalf("viewer saw %v, want %v", seen.seqs, want)
	}
	checkReplayMatches(t, h, v, &seen)
}

// A replica that missed seqs (PublishAssigned jumps) tells its viewers with
// a "gap"; the view's range must not span the gap, or a replay from a
// backlog that has those seqs shows entries the view never received.
func TestReplayOmitsAGapInTheSharedFeed(t *testing.T) {
	viewHub := newTestHub(t, HubConfig{})
	full := newTestHub(t, HubConfig{}) // a replica that read every entry
	es, obs := makeEntries("x", 10), time.Now()
	for i := range es {
		es[i].Seq = int64(i + 1)
		es[i].Observed = obs // the same entry on both replicas
	}
	if _, err := full.PublishAssigned(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	v := subscribe(t, viewHub, SubscribeOptions{})
	var seen clientDigest
	if _, err := viewHub.PublishAssigned(context.Background(), es[:3]); err != nil { // 1..3
		t.Fatal(err)
	}
	drainSeen(t, v, &seen, 3)
	if _, err := viewHub.PublishAssigned(context.Background(), es[6:]); err != nil { // 7..10; 4..6 missed
		t.Fatal(err)
	}
	drainSeen(t, v, &seen, 4)
	checkReplayMatches(t, full, v, &seen)
}

// Once the record is truncated, a later message must not stretch the last
// recorded range over entries the view skipped in between.
func TestReplayTruncatedRecordDoesNotStretchOverSkips(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})
	var seen clientDigest
	// Break the ranges maxRecordRanges times with pauses: each pause skips
	// one entry, so each delivered entry starts a range.
	for range maxRecordRanges {
		publish(t, h, makeEntries("shown", 1))
		drainSeen(t, v, &seen, 1)
		if err := v.SetPaused(true); err != nil {
			t.Fatal(err)
		}
		publish(t, h, makeEntries("paused", 1))
		if err := v.SetPaused(false); err != nil {
			t.Fatal(err)
		}
	}
	// Ranges are full: this one is not recorded (truncated)...
	publish(t, h, makeEntries("unrecorded", 1))
	drainSeen(t, v, &seen, 1)
	// ...and these follow it with nothing skipped.
	publish(t, h, makeEntries("tail", 2))
	drainSeen(t, v, &seen, 2)
	v.Close()
	st := v.Stats()
	if !st.Record.Truncated {
		t.Fatalf("record not truncated after %d ranges", len(st.Record.Ranges))
	}
	_, got, _ := replayAll(t, h, st.Record)
	for _, s := range got {
		if !slices.Contains(seen.seqs, s) {
			t.Fatalf("replay shows seq %d, which the view skipped (last range %+v)", s, st.Record.Ranges[len(st.Record.Ranges)-1])
		}
	}
}

// A client may change its filter as often as it likes: the record keeps a
// bounded number of epochs (and so bounded memory and a record that fits
// its audit event); entries delivered under an unrecorded epoch make the
// record truncated rather than attributed to another filter.
func TestReplayRecordBoundsFilterEpochs(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})
	var seen clientDigest
	publish(t, h, makeEntries("first", 1))
	drainSeen(t, v, &seen, 1)
	long := Filter{Attrs: map[string]string{"k": string(make([]byte, 4000))}}
	for i := range 5000 {
		f := Filter{MinLevel: LevelInfo}
		if i%2 == 0 {
			f = long
		}
		if err := v.SetFilter(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.SetFilter(Filter{}); err != nil {
		t.Fatal(err)
	}
	publish(t, h, makeEntries("last", 1))
	drainSeen(t, v, &seen, 1)
	v.Close()
	st := v.Stats()
	if n := len(st.Record.Epochs); n > maxRecordEpochs {
		t.Errorf("record holds %d epochs, want at most %d", n, maxRecordEpochs)
	}
	if !st.Record.Truncated {
		t.Error("an entry delivered under an unrecorded filter left the record complete")
	}
	_, got, _ := replayAll(t, h, st.Record)
	if !slices.Equal(got, []int64{1}) {
		t.Errorf("replay rebuilt %v, want only seq 1", got)
	}
}

// Paused counts every entry skipped while paused, however many pauses the
// record has room for.
func TestPausedCountsBeyondTheRecordedSkips(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{})
	const pauses = maxRecordRanges + 10
	for range pauses {
		if err := v.SetPaused(true); err != nil {
			t.Fatal(err)
		}
		publish(t, h, makeEntries("paused", 1))
		if err := v.SetPaused(false); err != nil {
			t.Fatal(err)
		}
	}
	v.Close()
	if got := v.Stats().Paused; got != pauses {
		t.Errorf("Paused = %d, want %d", got, pauses)
	}
}

package logs

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Held entries survive the backlog's retention, do not count against it,
// and come back in a replay; released, they are trimmed like the rest.
func TestHeldEntriesSurviveRetention(t *testing.T) {
	ctx := context.Background()
	bl, err := OpenSQLiteBacklog(ctx, filepath.Join(t.TempDir(), "logs.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bl.Close()
	clk := fakeClock(t)
	bl.Now = clk.Now
	h := newTestHub(t, HubConfig{Backlog: bl, Now: clk.Now, Retention: map[string]Retention{"": {MaxEntries: 5}}})
	t0 := clk.Now()
	publish(t, h, makeEntries("held", 4)) // seqs 1..4, observed at t0
	clk.Advance(time.Hour)
	if err := h.PlaceHold(ctx, Hold{ID: "grant:g1", Stream: testStream, From: t0.Add(-time.Minute), To: t0.Add(time.Minute), Reason: "INC-1"}); err != nil {
		t.Fatal(err)
	}
	publish(t, h, makeEntries("later", 10)) // seqs 5..14
	stored := func() []int64 {
		if _, err := h.Range(testStream, 0, 1); err != nil { // flushes the writer
			t.Fatal(err)
		}
		if err := bl.Trim(ctx, testStream, Retention{MaxEntries: 5}); err != nil {
			t.Fatal(err)
		}
		es, err := bl.Range(ctx, testStream, 0, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return seqs(es)
	}
	if got, want := stored(), append(seqRange(1, 4), seqRange(10, 14)...); !slices.Equal(got, want) {
		t.Fatalf("after trim the backlog holds %v, want the held 1..4 and the newest five", got)
	}
	res, got, _ := replayAll(t, h, ViewRecord{Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{From: 1, To: 4}}})
	if !slices.Equal(got, seqRange(1, 4)) || len(res.Missing) != 0 {
		t.Errorf("replay of the held view: %v, missing %+v", got, res.Missing)
	}
	if err := h.ReleaseHold(ctx, "grant:g1"); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !slices.Equal(got, seqRange(10, 14)) {
		t.Errorf("after release the backlog holds %v, want 10..14", got)
	}
	mem := newTestHub(t, HubConfig{})
	if mem.CanHold() || mem.PlaceHold(ctx, Hold{ID: "x", Stream: testStream}) != ErrHoldUnsupported {
		t.Error("a memory-only hub claims it can hold entries")
	}
}

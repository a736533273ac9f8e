package logs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"testing/synctest"
)

// clientDigest is what a viewer computes from the frames it received: the
// SHA-256 over the SHA-256 of each entry's JSON text, in order.
type clientDigest struct {
	sums []byte
	seqs []int64
}

func (c *clientDigest) add(t *testing.T, m Message) {
	t.Helper()
	if m.Type != TypeEntries {
		return
	}
	var frame struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal(m.Data, &frame); err != nil {
		t.Fatalf("frame is not JSON: %v", err)
	}
	for _, raw := range frame.Entries {
		sum := sha256.Sum256(raw)
		c.sums = append(c.sums, sum[:]...)
		var e Entry
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Fatal(err)
		}
		c.seqs = append(c.seqs, e.Seq)
	}
}

func (c *clientDigest) hex() string {
	s := sha256.Sum256(c.sums)
	return hex.EncodeToString(s[:])
}

func tenantEntries(prefix string, levels ...string) []Entry {
	es := makeEntries(prefix, len(levels))
	for i := range es {
		es[i].Level = levels[i]
		es[i].Attrs = map[string]string{"tenant": []string{"acme", "other"}[i%2]}
	}
	return es
}

// replayAll replays rec from r and returns the result and the seqs emitted.
func replayAll(t *testing.T, r RangeReader, rec ViewRecord) (ReplayResult, []int64, string) {
	t.Helper()
	var got clientDigest
	res, err := Replay(r, testStream, rec, func(data []byte, n int) error {
		got.add(t, Message{Type: TypeEntries, Data: data})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return res, got.seqs, got.hex()
}

// A view with a backfill, a filter, a filter change, a pause and a slow-
// viewer drop is rebuilt from the hub exactly: same entries, same digest.
func TestReplayRebuildsWhatTheViewerSaw(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newTestHub(t, HubConfig{QueueSize: 2})
		var seen clientDigest
		take := func(v *Viewer) {
			for {
				select {
				case m := <-v.Messages():
					seen.add(t, m)
					continue
				default:
				}
				synctest.Wait()
				select {
				case m := <-v.Messages():
					seen.add(t, m)
					continue
				default:
				}
				return
			}
		}
		publish(t, h, tenantEntries("old", "info", "info", "debug", "warn", "info", "error")) // 1..6
		v, err := h.Subscribe(testStream, SubscribeOptions{Lines: 2, Filter: Filter{Attrs: map[string]string{"tenant": "acme"}}})
		if err != nil {
			t.Fatal(err)
		}
		take(v)                                                               // backfill: the last two acme entries, seqs 3 and 5
		publish(t, h, tenantEntries("live", "info", "debug", "info", "warn")) // 7..10
		take(v)
		if err := v.SetFilter(Filter{MinLevel: LevelWarn}); err != nil {
			t.Fatal(err)
		}
		publish(t, h, tenantEntries("warnonly", "info", "warn", "error", "debug")) // 11..14
		take(v)
		if err := v.SetPaused(true); err != nil {
			t.Fatal(err)
		}
		publish(t, h, tenantEntries("paused", "warn", "error")) // 15..16: not sent
		take(v)
		if err := v.SetPaused(false); err != nil {
			t.Fatal(err)
		}
		publish(t, h, tenantEntries("resumed", "error")) // 17
		take(v)
		// Stop reading: the pump holds 18, the queue 19 and 20, 21..22 drop.
		for i := range 5 {
			publish(t, h, tenantEntries("burst", "warn"))
			_ = i
			synctest.Wait()
		}
		take(v)
		publish(t, h, tenantEntries("after", "fatal")) // 23
		take(v)
		v.Close()
		st := v.Stats()

		wantSeqs := []int64{3, 5, 7, 9, 12, 13, 17, 18, 19, 20, 23}
		if !slices.Equal(seen.seqs, wantSeqs) {
			t.Fatalf("viewer saw %v, want %v", seen.seqs, wantSeqs)
		}
		if st.EntriesDigest != seen.hex() {
			t.Fatalf("EntriesDigest %s, the viewer computes %s", st.EntriesDigest, seen.hex())
		}
		if st.Paused != 2 || st.Dropped != 2 {
			t.Errorf("Paused, Dropped = %d, %d; want 2, 2", st.Paused, st.Dropped)
		}
		var reasons []string
		for _, k := range st.Record.Skips {
			reasons = append(reasons, k.Reason)
		}
		if !slices.Equal(reasons, []string{SkipPaused, SkipSlowClient}) {
			t.Errorf("skips %+v, want a pause then a drop", st.Record.Skips)
		}
		if len(st.Record.Epochs) != 3 || !st.Record.Epochs[0].Backfill {
			t.Errorf("epochs %+v: want backfill, live, and the changed filter", st.Record.Epochs)
		}

		// The record survives its JSON trip through the audit trail.
		b, err := json.Marshal(st.Record)
		if err != nil {
			t.Fatal(err)
		}
		var rec ViewRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		res, got, digest := replayAll(t, h, rec)
		if !slices.Equal(got, wantSeqs) {
			t.Errorf("replay rebuilt %v, want %v", got, wantSeqs)
		}
		if res.EntriesDigest != st.EntriesDigest || digest != st.EntriesDigest || len(res.Missing) != 0 {
			t.Errorf("replay digest %s (frames %s), missing %+v; the view's is %s", res.EntriesDigest, digest, res.Missing, st.EntriesDigest)
		}
	})
}

// Entries the backlog no longer holds are reported as missing, and the
// replay never substitutes anything for them.
func TestReplayReportsWhatRetentionRemoved(t *testing.T) {
	full := newTestHub(t, HubConfig{})
	trimmed := newTestHub(t, HubConfig{Retention: map[string]Retention{"": {MaxEntries: 5}}})
	es := makeEntries("x", 10)
	publish(t, full, es)
	publish(t, trimmed, es) // same seqs, only 6..10 kept
	rec := ViewRecord{Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{Epoch: 0, From: 2, To: 9}}}
	want, _, _ := replayAll(t, full, rec)
	res, got, _ := replayAll(t, trimmed, rec)
	if !slices.Equal(got, seqRange(6, 9)) {
		t.Errorf("rebuilt %v, want 6..9", got)
	}
	if len(res.Missing) != 1 || res.Missing[0].From != 2 || res.Missing[0].To != 5 || res.Missing[0].Reason != "retention" {
		t.Errorf("missing = %+v, want 2..5 by retention", res.Missing)
	}
	if res.EntriesDigest == want.EntriesDigest {
		t.Error("a partial replay has the digest of the full one")
	}
}

// A sampled range is not shown at all (showing every entry would show more
// than the view did), and a malformed record is refused.
func TestReplayShowsNothingOutsideTheView(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	publish(t, h, makeEntries("x", 10))
	res, got, _ := replayAll(t, h, ViewRecord{Epochs: []ReplayEpoch{{}},
		Ranges: []SeqRange{{From: 1, To: 3}, {From: 4, To: 8, Sampled: true}, {From: 10, To: 10}}})
	if !slices.Equal(got, []int64{1, 2, 3, 10}) {
		t.Errorf("rebuilt %v, want 1..3 and 10", got)
	}
	if len(res.Missing) != 1 || res.Missing[0].Reason != "sampled" {
		t.Errorf("missing = %+v, want the sampled range", res.Missing)
	}
	for name, rec := range map[string]ViewRecord{
		"epoch out of range": {Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{Epoch: 1, From: 1, To: 2}}},
		"from after to":      {Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{From: 3, To: 2}}},
		"overlap":            {Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{From: 1, To: 5}, {From: 4, To: 6}}},
		"bad filter":         {Epochs: []ReplayEpoch{{Filter: Filter{Grep: "("}}}, Ranges: []SeqRange{{From: 1, To: 2}}},
	} {
		if _, err := Replay(h, testStream, rec, func([]byte, int) error { return nil }); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: err = %v, want ErrBadRecord", name, err)
		}
	}
}

// BenchmarkReplay100k rebuilds a 100,000-entry view from the SQLite backlog
// (read, decode, filter, encode, digest), with every entry of its range
// shown (filter=none) or every other one (filter=tenant, 200,000 read).
// Goal: under 1 s per replay.
func BenchmarkReplay100k(b *testing.B) {
	bl, err := OpenSQLiteBacklog(context.Background(), filepath.Join(b.TempDir(), "b.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bl.Close()
	const n = 200_000
	h := newTestHub(b, HubConfig{Backlog: bl, Retention: map[string]Retention{"": {MaxEntries: 1000, MaxBytes: 1 << 30}}})
	es := tenantEntries("bench", slices.Repeat([]string{LevelInfo}, n)...)
	for i := 0; i < n; i += 1000 {
		publish(b, h, es[i:i+1000])
	}
	if _, err := h.Range(testStream, 0, 1); err != nil { // waits for the backlog writer
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		rec  ViewRecord
	}{
		{"filter=none", ViewRecord{Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{From: 1, To: n / 2}}}},
		{"filter=tenant", ViewRecord{Epochs: []ReplayEpoch{{Filter: Filter{Attrs: map[string]string{"tenant": "acme"}}}},
			Ranges: []SeqRange{{From: 1, To: n}}}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				res, err := Replay(h, testStream, c.rec, func([]byte, int) error { return nil })
				if err != nil || res.Entries != n/2 || len(res.Missing) != 0 {
					b.Fatalf("replay: %d entries, missing %v, err %v", res.Entries, res.Missing, err)
				}
			}
			b.ReportMetric(float64(n/2), "entries/op")
		})
	}
}

// withhold hides some seqs of a real hub, as a backlog withholds entries
// that do not open under the current key file.
type withhold struct {
	*Hub
	hide map[int64]bool
}

func (w withhold) Range(s Stream, after int64, limit int) ([]Entry, error) {
	es, err := w.Hub.Range(s, after, limit)
	return slices.DeleteFunc(es, func(e Entry) bool { return w.hide[e.Seq] }), err
}

// A hole after the oldest entry is not retention: it is reported as
// unreadable.
func TestReplayReportsWithheldEntries(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	publish(t, h, makeEntries("x", 10))
	res, got, _ := replayAll(t, withhold{h, map[int64]bool{5: true, 6: true, 10: true}},
		ViewRecord{Epochs: []ReplayEpoch{{}}, Ranges: []SeqRange{{From: 3, To: 10}}})
	if !slices.Equal(got, []int64{3, 4, 7, 8, 9}) {
		t.Errorf("rebuilt %v", got)
	}
	if len(res.Missing) != 2 || res.Missing[0].From != 5 || res.Missing[0].To != 6 || res.Missing[0].Reason != "unreadable" ||
		res.Missing[1].From != 10 || res.Missing[1].Reason != "unreadable" {
		t.Errorf("missing = %+v, want 5..6 and 10 unreadable", res.Missing)
	}
}

// FuzzReplay: whatever record it is given (it comes from the trail, which
// an attacker with the data directory could edit), Replay never panics and
// never emits an entry outside an unsampled range its epoch selects.
func FuzzReplay(f *testing.F) {
	f.Add([]byte(`{"epochs":[{"filter":{}}],"ranges":[{"epoch":0,"from":1,"to":5}]}`))
	f.Add([]byte(`{"epochs":[{"filter":{"min_level":"warn"}},{"filter":{"grep":"x 1"},"since":"2026-09-01T12:00:00.004Z"}],"ranges":[{"epoch":1,"from":2,"to":9},{"epoch":0,"from":3,"to":4,"sampled":true}]}`))
	h := newTestHub(f, HubConfig{})
	es := makeEntries("x", 20)
	for i := range es {
		es[i].Level = []string{LevelDebug, LevelInfo, LevelWarn, LevelError}[i%4]
	}
	publish(f, h, es)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec ViewRecord
		if json.Unmarshal(data, &rec) != nil || len(rec.Ranges) > 64 {
			return
		}
		allowed := map[int64]bool{}
		for _, rg := range rec.Ranges {
			if rg.Sampled || rg.Epoch < 0 || rg.Epoch >= len(rec.Epochs) {
				continue
			}
			m, err := rec.Epochs[rg.Epoch].Filter.Compile()
			if err != nil {
				continue
			}
			for i := range es {
				e := &es[i]
				if e.Seq >= rg.From && e.Seq <= rg.To && m.Match(e) &&
					(rec.Epochs[rg.Epoch].Since.IsZero() || !e.Time.Before(rec.Epochs[rg.Epoch].Since)) {
					allowed[e.Seq] = true
				}
			}
		}
		_, _ = Replay(h, testStream, rec, func(data []byte, n int) error {
			var frame struct{ Entries []Entry }
			if err := json.Unmarshal(data, &frame); err != nil || len(frame.Entries) != n {
				t.Fatalf("frame %q: %v", data, err)
			}
			for _, e := range frame.Entries {
				if !allowed[e.Seq] {
					t.Fatalf("emitted seq %d, outside what the record allows", e.Seq)
				}
			}
			return nil
		})
	})
}

package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// downTrail is a real store that has been closed: every append fails with
// ErrUnavailable, as when the trail's disk or Redis is gone.
func downTrail(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	return s
}

func openSpoolTest(t *testing.T, dir string, trail Appender) *Spool {
	t.Helper()
	sp, err := OpenSpool(SpoolConfig{Dir: dir, Trail: trail, RetryMin: time.Hour, RetryMax: time.Hour})
	if err != nil {
		t.Fatalf("OpenSpool: %v", err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

func closedEvent(view string, entries int) Event {
	return Event{Action: ActionStreamClosed, Actor: Actor{Kind: ActorUser, Subject: "alice"}, Outcome: OutcomeSuccess,
		Target: Target{GrantID: "grt_1", Service: "checkout", Env: "prod"},
		Details: map[string]any{DetailViewID: view, "entries": entries, "close_reason": "backend_unavailable",
			"redactions": map[string]int64{"aws_key": 2}}}
}

// eventsByID counts the trail's events per id.
func eventsByID(t *testing.T, s *Store) (map[string]int, []Event) {
	t.Helper()
	page, err := s.Search(context.Background(), Query{Limit: MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, ev := range page.Items {
		n[ev.ID]++
	}
	slices.Reverse(page.Items) // oldest first
	return n, page.Items
}

func spoolFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	return m
}

func TestSpoolKeepsEventsWhileTheTrailIsDownAndAppendsThemInOrder(t *testing.T) {
	dir, trailDir := t.TempDir(), t.TempDir()
	down := downTrail(t)
	sp := openSpoolTest(t, dir, down)
	var want []Event
	for i, view := range []string{"view_a", "view_b", "view_c"} {
		ev, spooled, err := sp.Record(context.Background(), closedEvent(view, i))
		if err != nil || !spooled {
			t.Fatalf("Record with the trail down = %v, spooled %v; want spooled", err, spooled)
		}
		want = append(want, ev)
	}
	if st := sp.Stats(); st.Depth != 3 || st.Spooled != 3 || st.Oldest.IsZero() {
		t.Errorf("stats = %+v, want depth 3, spooled 3, an oldest time", st)
	}
	if err := sp.Drain(context.Background()); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Drain with the trail down = %v, want ErrUnavailable", err)
	}
	sp.Close()

	// The replica restarts with the trail back: the spool is read from disk.
	trail := openTest(t, trailDir)
	sp2 := openSpoolTest(t, dir, trail)
	if err := sp2.Drain(context.Background()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if st := sp2.Stats(); st.Depth != 0 || st.Drained != 3 {
		t.Errorf("stats after drain = %+v, want depth 0, drained 3", st)
	}
	if f := spoolFiles(t, dir, ".evt"); len(f) != 0 {
		t.Errorf("spool files left after drain: %v", f)
	}
	_, got := eventsByID(t, trail)
	if len(got) != 3 {
		t.Fatalf("trail holds %d events, want 3", len(got))
	}
	for i, ev := range got {
		if ev.ID != want[i].ID || !ev.Time.Equal(want[i].Time) {
			t.Errorf("event %d = %s at %v, want %s at its original time %v", i, ev.ID, ev.Time, want[i].ID, want[i].Time)
		}
		at, err := time.Parse(time.RFC3339Nano, ev.Details[DetailSpooledAt].(string))
		if err != nil || at.Before(ev.Time) {
			t.Errorf("event %d spooled_at = %v (%v), want a time at or after the event's", i, ev.Details[DetailSpooledAt], err)
		}
		if ev.Details[DetailViewID] != want[i].Details[DetailViewID] {
			t.Errorf("event %d is view %v, want %v (order kept)", i, ev.Details[DetailViewID], want[i].Details[DetailViewID])
		}
	}
	if rep, err := Verify(context.Background(), trailDir, nil); err != nil {
		t.Errorf("verify after drain: %v %+v", err, rep.Problems)
	} else if rep.Spooled != 3 {
		t.Errorf("verify report spooled = %d, want 3", rep.Spooled)
	}
}

func TestSpoolRecordGoesStraightToAWorkingTrail(t *testing.T) {
	trail := openTest(t, t.TempDir())
	sp := openSpoolTest(t, t.TempDir(), trail)
	ev, spooled, err := sp.Record(context.Background(), closedEvent("view_a", 1))
	if err != nil || spooled {
		t.Fatalf("Record = %v, spooled %v; want appended", err, spooled)
	}
	if ev.Seq != 1 || ev.Details[DetailSpooledAt] != nil {
		t.Errorf("appended event = %+v, want seq 1 without spooled_at", ev)
	}
	if _, _, err := sp.Record(context.Background(), Event{Action: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid event: %v, want ErrInvalid (never spooled)", err)
	}
}

// A drain cut off between the append and the file's removal (a crash)
// appends the event again on the next start: the trail must keep one.
func TestSpoolDrainInterruptedBeforeRemovalAppendsOnce(t *testing.T) {
	dir := t.TempDir()
	sp := openSpoolTest(t, dir, downTrail(t))
	ev, _, err := sp.Record(context.Background(), closedEvent("view_a", 7))
	if err != nil {
		t.Fatal(err)
	}
	sp.Close()
	files := spoolFiles(t, dir, ".evt")
	if len(files) != 1 {
		t.Fatalf("spool files = %v, want 1", files)
	}
	saved, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}

	trail := openTest(t, t.TempDir())
	sp2 := openSpoolTest(t, dir, trail)
	if err := sp2.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	sp2.Close()
	// The crash: the file is still there after the append.
	if err := os.WriteFile(files[0], saved, 0o600); err != nil {
		t.Fatal(err)
	}
	sp3 := openSpoolTest(t, dir, trail)
	if err := sp3.Drain(context.Background()); err != nil {
		t.Fatalf("second drain: %v", err)
	}
	n, all := eventsByID(t, trail)
	if n[ev.ID] != 1 || len(all) != 1 {
		t.Errorf("trail holds %d events, %d with the spooled id; want exactly one", len(all), n[ev.ID])
	}
	if st := sp3.Stats(); st.Depth != 0 || len(spoolFiles(t, dir, ".rejected")) != 0 {
		t.Errorf("after the repeat: %+v, rejected %v; want empty, nothing rejected", st, spoolFiles(t, dir, ".rejected"))
	}
}

// A first attempt whose outcome was unknown (it landed, its answer was
// lost) is in the trail without spooled_at; the spooled copy has it. The
// drain must see the id is there and append nothing.
func TestSpoolDrainOfAnEventAlreadyInTheTrailAppendsNothing(t *testing.T) {
	trail := openTest(t, t.TempDir())
	ev := closedEvent("view_a", 3)
	ev.ID, ev.Time = NewEventID(), time.Now().UTC()
	if _, err := trail.Append(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ev.Details = cloneDetails(ev.Details)
	ev.Details[DetailSpooledAt] = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := EncodeSpoolRecord(ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.evt"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	sp := openSpoolTest(t, dir, trail)
	if err := sp.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, all := eventsByID(t, trail); len(all) != 1 || n[ev.ID] != 1 {
		t.Errorf("trail holds %d events; want the one appended before", len(all))
	}
	if st := sp.Stats(); st.Depth != 0 || st.Drained != 1 {
		t.Errorf("stats = %+v, want drained 1", st)
	}
}

// Torn or corrupt spool files (a crash mid-write, a bad disk) are reported
// and set aside, never appended in part; the good ones still drain.
func TestSpoolQuarantinesTornAndCorruptRecords(t *testing.T) {
	dir := t.TempDir()
	sp := openSpoolTest(t, dir, downTrail(t))
	var ids []string
	for i := range 4 {
		ev, _, err := sp.Record(context.Background(), closedEvent("view_"+string(rune('a'+i)), i))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	sp.Close()
	files := spoolFiles(t, dir, ".evt")
	slices.Sort(files)
	mutate := func(path string, f func([]byte) []byte) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, f(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mutate(files[1], func(b []byte) []byte { return b[:len(b)/2] }) // torn write
	mutate(files[2], func(b []byte) []byte {                        // a flipped bit in the payload
		b[len(b)-5] ^= 0x20
		return b
	})
	mutate(files[3], func(b []byte) []byte { return b[:7] }) // torn inside the header

	trail := openTest(t, t.TempDir())
	sp2 := openSpoolTest(t, dir, trail)
	if st := sp2.Stats(); st.Corrupt != 3 || st.Depth != 1 {
		t.Errorf("stats = %+v, want corrupt 3, depth 1", st)
	}
	if err := sp2.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, all := eventsByID(t, trail)
	if len(all) != 1 || n[ids[0]] != 1 {
		t.Errorf("trail holds %d events; want only the intact one", len(all))
	}
	if q := spoolFiles(t, dir, ".corrupt"); len(q) != 3 {
		t.Errorf("quarantined files = %v, want 3", q)
	}
	// New records never reuse a quarantined file's number.
	sp2.Close()
	sp3 := openSpoolTest(t, dir, downTrail(t))
	if _, _, err := sp3.Record(context.Background(), closedEvent("view_z", 1)); err != nil {
		t.Fatal(err)
	}
	if f := spoolFiles(t, dir, ".evt"); len(f) != 1 || !strings.HasSuffix(f[0], "00000000000000000005.evt") {
		t.Errorf("new spool file = %v, want number 5", f)
	}
}

func TestSpoolRecordCodec(t *testing.T) {
	ev := closedEvent("view_a", 12)
	ev.ID, ev.Time = NewEventID(), time.Date(2026, 12, 3, 12, 0, 0, 123456789, time.UTC)
	b, err := EncodeSpoolRecord(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSpoolRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	// The decoded event encodes to the same record tail: what the stores
	// compare when an append is repeated.
	a, _ := EncodeTail(&ev)
	c, _ := EncodeTail(&got)
	if !bytes.Equal(a, c) {
		t.Errorf("tail after a round trip:\n%s\nwant\n%s", c, a)
	}
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"bad magic":  append([]byte("XXXX"), b[4:]...),
		"extra byte": append(bytes.Clone(b), '}'),
		"short":      b[:len(b)-1],
	} {
		if _, err := DecodeSpoolRecord(bad); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
}

func FuzzDecodeSpoolRecord(f *testing.F) {
	ev := closedEvent("view_a", 1)
	ev.ID, ev.Time = NewEventID(), time.Unix(1, 0).UTC()
	b, _ := EncodeSpoolRecord(ev)
	f.Add(b)
	f.Add([]byte("LGS1\x00\x00\x00\x02\x00\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := DecodeSpoolRecord(data)
		if err != nil {
			return
		}
		b, err := EncodeSpoolRecord(ev)
		if err != nil {
			t.Fatalf("re-encode a decoded record: %v", err)
		}
		if _, err := DecodeSpoolRecord(b); err != nil {
			t.Fatalf("decode a re-encoded record: %v", err)
		}
	})
}

func TestAppendWithAnIDIsIdempotent(t *testing.T) {
	s := openTest(t, t.TempDir())
	ev := closedEvent("view_a", 1)
	ev.ID, ev.Time = NewEventID(), time.Now().UTC()
	first, err := s.Append(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Append(context.Background(), ev)
	if err != nil || again.Seq != first.Seq || again.Hash != first.Hash {
		t.Errorf("repeat = seq %d, %v; want the stored seq %d", again.Seq, err, first.Seq)
	}
	other := ev
	other.Reason = "something else"
	if _, err := s.Append(context.Background(), other); !errors.Is(err, ErrInvalid) {
		t.Errorf("same id, other content: %v, want ErrInvalid", err)
	}
	if n, all := eventsByID(t, s); len(all) != 1 || n[ev.ID] != 1 {
		t.Errorf("trail holds %d events, want 1", len(all))
	}
}

package sink

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

func TestRunnerDeliversInOrderAndSavesCursor(t *testing.T) {
	s := openStore(t)
	evs := appendEvents(t, s, 10)
	dir := t.TempDir()
	c := &collector{}
	var mu sync.Mutex
	var seen []Delivery
	r := newRunner(t, s, c, dir, func(cfg *Config) {
		cfg.Observe = func(d Delivery) { mu.Lock(); seen = append(seen, d); mu.Unlock() }
	})
	runUntil(t, r, 10)

	var want []string
	for _, ev := range evs {
		want = append(want, ev.ID)
	}
	if got := c.ids(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, "test.cursor"))
	if err != nil || string(b) != "10\n" {
		t.Errorf("cursor file = %q, %v; want \"10\\n\"", b, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || seen[0].Events != 4 || seen[2].LastSeq != 10 || seen[2].Cursor != 10 || seen[0].Err != nil {
		t.Errorf("observed deliveries %+v, want 3 batches (4,4,2) ending at cursor 10", seen)
	}
}

func TestRunnerRetriesWithBackoff(t *testing.T) {
	s := openStore(t)
	appendEvents(t, s, 3)
	c := &collector{fail: func(n int) error {
		if n <= 2 {
			return errors.New("receiver down")
		}
		return nil
	}}
	var attempts []int
	var errs int
	r := newRunner(t, s, c, t.TempDir(), func(cfg *Config) {
		cfg.Observe = func(d Delivery) {
			attempts = append(attempts, d.Attempt)
			if d.Err != nil {
				errs++
			}
		}
	})
	runUntil(t, r, 3)
	if got := len(c.ids()); got != 3 {
		t.Errorf("delivered %d events, want 3", got)
	}
	if !slices.Equal(attempts, []int{1, 2, 3}) || errs != 2 {
		t.Errorf("attempts %v with %d errors, want [1 2 3] with 2", attempts, errs)
	}
}

// A restart resumes from the saved cursor. A crash after delivering but
// before saving (simulated by putting an older cursor back) repeats events,
// which receivers deduplicate by id: nothing is lost.
func TestRunnerRestartResumesWithoutLoss(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	cursor := filepath.Join(dir, "test.cursor")
	evs := appendEvents(t, s, 6)
	c := &collector{}
	runUntil(t, newRunner(t, s, c, dir, nil), 6)

	evs = append(evs, appendEvents(t, s, 5)...)
	if err := os.WriteFile(cursor, []byte("4\n"), 0o600); err != nil { // "crash" lost the last save
		t.Fatal(err)
	}
	r := newRunner(t, s, c, dir, nil)
	if got := r.Cursor(); got != 4 {
		t.Fatalf("restarted cursor = %d, want 4", got)
	}
	runUntil(t, r, 11)

	got := c.ids()
	if len(got) != 6+7 {
		t.Errorf("delivered %d events, want 13 (6, then 7 from seq 5)", len(got))
	}
	dedup := map[string]bool{}
	for _, id := range got {
		dedup[id] = true
	}
	for _, ev := range evs {
		if !dedup[ev.ID] {
			t.Errorf("event seq %d (%s) never delivered", ev.Seq, ev.ID)
		}
	}
	if len(dedup) != len(evs) {
		t.Errorf("%d distinct ids, want %d", len(dedup), len(evs))
	}
}

func TestNewRunnerRejects(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.cursor")
	os.WriteFile(bad, []byte("twelve\n"), 0o600)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no name", Config{Source: s, Sink: &collector{}, CursorFile: filepath.Join(dir, "c")}},
		{"no sink", Config{Name: "x", Source: s, CursorFile: filepath.Join(dir, "c")}},
		{"no cursor file", Config{Name: "x", Source: s, Sink: &collector{}}},
		{"corrupt cursor", Config{Name: "x", Source: s, Sink: &collector{}, CursorFile: bad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRunner(tt.cfg); err == nil {
				t.Error("NewRunner accepted it")
			}
		})
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"0\n", "12", " 7 \n", "-1", "007", "9223372036854775808", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := parseCursor(b)
		if err != nil {
			return
		}
		dir := t.TempDir()
		p := filepath.Join(dir, "c")
		if err := writeCursor(p, n); err != nil {
			t.Fatal(err)
		}
		if got, err := readCursor(p); err != nil || got != n {
			t.Fatalf("round trip %d: got %d, %v", n, got, err)
		}
	})
}

// memCursor is a CursorStore in memory.
type memCursor struct {
	mu    sync.Mutex
	seq   int64
	saves int
}

func (m *memCursor) Load(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq, nil
}
func (m *memCursor) Save(_ context.Context, seq int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq, m.saves = seq, m.saves+1
	return nil
}

func TestRunnerUsesCursorStore(t *testing.T) {
	s := openStore(t)
	evs := appendEvents(t, s, 6)
	dir := t.TempDir()
	cur := &memCursor{seq: 2}
	c := &collector{}
	r := newRunner(t, s, c, dir, func(cfg *Config) { cfg.CursorFile = ""; cfg.Cursor = cur })
	runUntil(t, r, 6)
	var want []string
	for _, ev := range evs[2:] {
		want = append(want, ev.ID)
	}
	if got := c.ids(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v (resuming after the stored cursor 2)", got, want)
	}
	if cur.seq != 6 || cur.saves == 0 {
		t.Errorf("cursor store holds %d after %d saves, want 6", cur.seq, cur.saves)
	}
	if _, err := os.Stat(filepath.Join(dir, "test.cursor")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cursor file written (%v) although a CursorStore was given", err)
	}
}

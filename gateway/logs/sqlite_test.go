package logs

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func openTestBacklog(t *testing.T, path string) *SQLiteBacklog {
	t.Helper()
	b, err := OpenSQLiteBacklog(context.Background(), path, nil)
	if err != nil {
		t.Fatalf("OpenSQLiteBacklog: %v", err)
	}
	return b
}

func TestSQLiteBacklogSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "backlog.db")
	ctx := context.Background()

	b := openTestBacklog(t, path)
	h, err := NewHub(HubConfig{Backlog: b})
	if err != nil {
		t.Fatal(err)
	}
	es := makeEntries("before", 5)
	es[2].Attrs = map[string]string{"k": "v"}
	es[2].Redactions = map[string]int{"email": 1}
	before := publish(t, h, es)
	if err := h.Close(); err != nil { // flushes the backlog
		t.Fatalf("hub Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = openTestBacklog(t, path)
	defer b.Close()
	h = newTestHub(t, HubConfig{Backlog: b})
	infos := h.Streams()
	if len(infos) != 1 || infos[0].Stream != testStream || infos[0].LastSeq != 5 || infos[0].Entries != 5 {
		t.Errorf("Streams() after restart = %+v, want %v with 5 entries up to seq 5", infos, testStream)
	}
	after := publish(t, h, makeEntries("after", 2))
	if got, want := seqs(after), []int64{6, 7}; !slices.Equal(got, want) {
		t.Fatalf("seqs after restart = %v, want %v", got, want)
	}
	// The ring was restored: a resume from before the restart is seamless.
	v := subscribe(t, h, SubscribeOptions{After: 2})
	got := recvEntries(t, v, 5)
	if want := seqRange(3, 7); !slices.Equal(seqs(got), want) {
		t.Fatalf("resume across restart = %v, want %v", seqs(got), want)
	}
	if diff := cmp.Diff(before[2:], got[:3], timeEqual); diff != "" {
		t.Errorf("restored entries differ (-published +resumed):\n%s", diff)
	}
	// Range sees entries published but maybe not yet written.
	all, err := h.Range(testStream, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs(all), seqRange(1, 7)) {
		t.Errorf("Range = %v, want 1..7", seqs(all))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	last, err := b.LastSeq(ctx, testStream)
	if err != nil || last != 7 {
		t.Errorf("LastSeq = %d, %v; want 7", last, err)
	}
	streams, err := b.Streams(ctx)
	if err != nil || !slices.Equal(streams, []Stream{testStream}) {
		t.Errorf("Streams = %v, %v; want [%v]", streams, err, testStream)
	}
}

// timeEqual compares times by instant (JSON does not keep the location).
var timeEqual = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

func TestHubRangeReadsBacklogBeyondMemory(t *testing.T) {
	b := openTestBacklog(t, filepath.Join(t.TempDir(), "backlog.db"))
	defer b.Close()
	ctx := context.Background()
	// The disk holds entries 1..10; a hub that keeps 3 in memory.
	es := makeEntries("x", 10)
	for i := range es {
		es[i].Seq = int64(i + 1)
		es[i].Observed = time.Now()
	}
	if err := b.Append(ctx, es); err != nil {
		t.Fatal(err)
	}
	h := newTestHub(t, HubConfig{Backlog: b, Retention: map[string]Retention{"": {MaxEntries: 3}}})
	// Nothing published yet, so the writer has not trimmed the disk to the
	// hub's retention: memory holds 8..10, the disk 1..10.
	got, err := h.Range(testStream, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{5, 6, 7}; !slices.Equal(seqs(got), want) {
		t.Errorf("Range(after 4, limit 3) = %v, want %v", seqs(got), want)
	}
	got, err = h.Range(testStream, 9, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int64{10}; !slices.Equal(seqs(got), want) {
		t.Errorf("Range(after 9) = %v, want %v", seqs(got), want)
	}
}

func TestSQLiteBacklogRangeAndTrim(t *testing.T) {
	ctx := context.Background()
	clock := fakeClock(t)
	seed := func(t *testing.T) *SQLiteBacklog {
		b := openTestBacklog(t, filepath.Join(t.TempDir(), "backlog.db"))
		t.Cleanup(func() { b.Close() })
		b.Now = clock.Now
		es := makeEntries("x", 10)
		for i := range es {
			es[i].Seq = int64(i + 1)
			es[i].Observed = clock.Now().Add(time.Duration(i-10) * time.Minute) // 10m .. 1m ago
		}
		other := es[0]
		other.Service = "other"
		if err := b.Append(ctx, append(es, other)); err != nil {
			t.Fatal(err)
		}
		return b
	}
	one := makeEntries("x", 1)[0]
	size := int64(entrySize(&one))

	t.Run("range", func(t *testing.T) {
		b := seed(t)
		t0 := makeEntries("x", 1)[0].Time
		tests := []struct {
			name  string
			after int64
			since time.Time
			limit int
			want  []int64
		}{
			{"all", 0, time.Time{}, 0, seqRange(1, 10)},
			{"after", 7, time.Time{}, 0, []int64{8, 9, 10}},
			{"limit", 2, time.Time{}, 3, []int64{3, 4, 5}},
			{"since", 0, t0.Add(8 * time.Millisecond), 0, []int64{9, 10}},
		}
		for _, tt := range tests {
			got, err := b.Range(ctx, testStream, tt.after, tt.since, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("%s: Range = %v, want %v", tt.name, seqs(got), tt.want)
			}
		}
	})

	tests := []struct {
		name string
		ret  Retention
		want []int64
	}{
		{"by count", Retention{MaxEntries: 4}, seqRange(7, 10)},
		{"by age", Retention{MaxAge: 3*time.Minute + time.Second}, []int64{8, 9, 10}},
		{"by bytes", Retention{MaxBytes: 2*size + 1}, []int64{9, 10}},
		{"defaults keep all", Retention{}, seqRange(1, 10)},
	}
	for _, tt := range tests {
		t.Run("trim "+tt.name, func(t *testing.T) {
			b := seed(t)
			if err := b.Trim(ctx, testStream, tt.ret); err != nil {
				t.Fatal(err)
			}
			got, err := b.Range(ctx, testStream, 0, time.Time{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(seqs(got), tt.want) {
				t.Errorf("after Trim = %v, want %v", seqs(got), tt.want)
			}
			if last, _ := b.LastSeq(ctx, Stream{Service: "other", Env: "prod"}); last != 1 {
				t.Errorf("trim of %v touched another stream", testStream)
			}
		})
	}
}

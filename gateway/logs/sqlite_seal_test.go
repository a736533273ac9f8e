package logs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/logs/seal"
)

func testRing(t *testing.T, text []byte) *seal.Ring {
	t.Helper()
	r, err := seal.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// sealedBacklog opens the backlog at path sealed with ring.
func sealedBacklog(t *testing.T, path string, ring *seal.Ring) *SQLiteBacklog {
	t.Helper()
	b := openTestBacklog(t, path)
	t.Cleanup(func() { b.Close() })
	if err := b.UseKeys(context.Background(), ring); err != nil {
		t.Fatalf("UseKeys: %v", err)
	}
	return b
}

// appendMarked appends n entries to testStream whose messages hold marker.
func appendMarked(t *testing.T, b *SQLiteBacklog, marker string, first int64, n int) {
	t.Helper()
	es := makeEntries(marker, n)
	for i := range es {
		es[i].Seq = first + int64(i)
		es[i].Attrs = map[string]string{"user": marker + "-attr"}
	}
	if err := b.Append(context.Background(), es); err != nil {
		t.Fatal(err)
	}
}

// filesContaining lists the files under dir whose bytes contain s.
func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(s)) {
			hits = append(hits, filepath.Base(p))
		}
		return nil
	})
	return hits
}

func TestSealedBacklogHasNoClearText(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs.db")
	text := seal.Generate()
	b := sealedBacklog(t, path, testRing(t, text))
	appendMarked(t, b, "zebra-canary", 1, 20)

	if hits := filesContaining(t, dir, "zebra-canary"); len(hits) > 0 {
		t.Errorf("clear text of a sealed entry found in %v", hits)
	}
	got, err := b.Range(context.Background(), testStream, 0, time.Time{}, 0)
	if err != nil || len(got) != 20 || !strings.HasPrefix(got[0].Message, "zebra-canary") || got[0].Attrs["user"] != "zebra-canary-attr" {
		t.Fatalf("Range = %d entries (first %+v), %v; want the 20 appended", len(got), first(got), err)
	}

	// A restart with the same key file reads them again.
	b.Close()
	b = sealedBacklog(t, path, testRing(t, text))
	if got, err := b.Range(context.Background(), testStream, 0, time.Time{}, 0); err != nil || len(got) != 20 {
		t.Fatalf("Range after reopen = %d, %v; want 20", len(got), err)
	}
}

// TestMovedSealedEntryIsWithheld: an entry copied to another position or
// stream does not open there; Range skips it (a gap) and counts it.
func TestMovedSealedEntryIsWithheld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	b := sealedBacklog(t, path, testRing(t, seal.Generate()))
	appendMarked(t, b, "m", 1, 3)
	ctx := context.Background()
	// Seq 2 now holds the sealed bytes of seq 3; seq 3 is copied to another stream.
	if _, err := b.db.ExecContext(ctx, `UPDATE log_entries SET entry = (SELECT entry FROM log_entries WHERE seq = 3) WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ExecContext(ctx, `INSERT INTO log_entries SELECT 'payments', env, seq, time_ns, observed_ns, size, entry FROM log_entries WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	got, err := b.Range(ctx, testStream, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s := seqs(got); len(s) != 2 || s[0] != 1 || s[1] != 3 {
		t.Errorf("Range seqs = %v, want [1 3] (the moved seq 2 withheld)", s)
	}
	moved, err := b.Range(ctx, Stream{Service: "payments", Env: testStream.Env}, 0, time.Time{}, 0)
	if err != nil || len(moved) != 0 {
		t.Errorf("Range of the stream an entry was copied to = %v, %v; want nothing", moved, err)
	}
	if n := b.Withheld(); n != 2 {
		t.Errorf("Withheld = %d, want 2", n)
	}
}

func TestUseKeysNamesTheMissingKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	old := testRing(t, seal.Generate())
	b := sealedBacklog(t, path, old)
	appendMarked(t, b, "k", 1, 2)
	b.Close()

	for _, tc := range []struct {
		name string
		ring *seal.Ring
		want string
	}{
		{"other key file", testRing(t, seal.Generate()), "sealed with key " + old.NewestID()},
		{"no key file", nil, "sealed with key " + old.NewestID() + ", and no key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openTestBacklog(t, path)
			defer b.Close()
			err := b.UseKeys(context.Background(), tc.ring)
			var uk *seal.UnknownKeyError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &uk) || uk.ID != old.NewestID() {
				t.Fatalf("UseKeys = %v, want an UnknownKeyError containing %q", err, tc.want)
			}
		})
	}
}

// TestResealRotatesTheBacklog: a clear backlog and one under an old key
// are re-sealed with the newest key; afterwards the old key can go.
func TestResealRotatesTheBacklog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs.db")
	ctx := context.Background()
	b := openTestBacklog(t, path)
	appendMarked(t, b, "clear-before-encryption", 1, 600) // more than one page of Reseal
	b.Close()

	oldText := seal.Generate()
	b = sealedBacklog(t, path, testRing(t, oldText))
	appendMarked(t, b, "under-old-key", 601, 5)
	rep, err := b.Reseal(ctx)
	if err != nil || rep.Resealed != 600 || rep.Current != 5 || rep.Withheld != 0 {
		t.Fatalf("Reseal = %+v, %v; want 600 resealed, 5 current", rep, err)
	}
	if hits := filesContaining(t, dir, "clear-before-encryption"); len(hits) > 0 {
		t.Errorf("clear text left after Reseal in %v", hits)
	}
	b.Close()

	newText, newID, err := seal.Prepend(oldText)
	if err != nil {
		t.Fatal(err)
	}
	b = sealedBacklog(t, path, testRing(t, newText))
	if rep, err := b.Reseal(ctx); err != nil || rep.Resealed != 605 {
		t.Fatalf("Reseal after rotation = %+v, %v; want 605 resealed", rep, err)
	}
	b.Close()

	// Only the new key is left: everything still opens.
	lines := strings.Split(string(newText), "\n")
	var onlyNew []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "lgk1 ") || strings.HasPrefix(l, "lgk1 "+newID) {
			onlyNew = append(onlyNew, l)
		}
	}
	b = sealedBacklog(t, path, testRing(t, []byte(strings.Join(onlyNew, "\n"))))
	got, err := b.Range(ctx, testStream, 0, time.Time{}, 0)
	if err != nil || len(got) != 605 || b.Withheld() != 0 {
		t.Fatalf("Range with only the new key = %d entries, %d withheld, %v; want 605", len(got), b.Withheld(), err)
	}
}

func first(es []Entry) any {
	if len(es) == 0 {
		return nil
	}
	return es[0]
}

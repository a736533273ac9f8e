package sink

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFileSinkRotatesBySize(t *testing.T) {
	s := openStore(t)
	evs := appendEvents(t, s, 30)
	dir := t.TempDir()
	path := filepath.Join(dir, "out", "audit.ndjson")
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	const maxBytes = 1500
	fs, err := NewFile(FileConfig{Path: path, MaxBytes: maxBytes, Now: func() time.Time { clock = clock.Add(time.Second); return clock }})
	if err != nil {
		t.Fatal(err)
	}
	runUntil(t, newRunner(t, s, fs, dir, nil), 30)

	files, err := fs.Rotated()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("%d rotated files, want several with MaxBytes %d", len(files), maxBytes)
	}
	var all []byte
	for _, f := range append(files, path) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > maxBytes {
			t.Errorf("%s has %d bytes, over MaxBytes %d", filepath.Base(f), len(b), maxBytes)
		}
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", filepath.Base(f), st.Mode().Perm())
		}
		all = append(all, b...)
	}
	ls := lines(all)
	if len(ls) != len(evs) {
		t.Fatalf("%d lines over all files, want %d", len(ls), len(evs))
	}
	recs, _ := s.After(t.Context(), 0, 100)
	for i, l := range ls {
		id, seq := checkLine(t, l)
		if id != evs[i].ID || seq != evs[i].Seq {
			t.Errorf("line %d is seq %d, want %d", i, seq, evs[i].Seq)
		}
		if want := recs[i].Line(); !bytes.Equal(append(l, '\n'), want) {
			t.Errorf("line %d is not the stored record + hash:\n%q\n%q", i, l, want)
		}
	}
}

func TestFileSinkKeepsMaxFiles(t *testing.T) {
	s := openStore(t)
	appendEvents(t, s, 30)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.ndjson")
	fs, err := NewFile(FileConfig{Path: path, MaxBytes: 1000, MaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	runUntil(t, newRunner(t, s, fs, dir, nil), 30)
	files, _ := fs.Rotated()
	if len(files) != 2 {
		t.Errorf("rotated files %v, want the newest 2", files)
	}
	last, _ := os.ReadFile(path)
	ls := lines(last)
	if _, seq := checkLine(t, ls[len(ls)-1]); seq != 30 {
		t.Errorf("current file ends at seq %d, want 30", seq)
	}
}

// A crash in the middle of a write leaves a torn line; reopening cuts it so
// the repeated batch starts on a line of its own.
func TestFileSinkCutsTornLine(t *testing.T) {
	s := openStore(t)
	appendEvents(t, s, 3)
	recs, _ := s.After(t.Context(), 0, 10)
	path := filepath.Join(t.TempDir(), "audit.ndjson")
	torn := append(recs[0].Line(), recs[1].Line()[:20]...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	fs, err := NewFile(FileConfig{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.Deliver(t.Context(), recs[1:]); err != nil {
		t.Fatal(err)
	}
	fs.Close()
	b, _ := os.ReadFile(path)
	want := append(append(recs[0].Line(), recs[1].Line()...), recs[2].Line()...)
	if !bytes.Equal(b, want) {
		t.Errorf("file after torn line and redelivery:\n%s\nwant\n%s", b, want)
	}
}

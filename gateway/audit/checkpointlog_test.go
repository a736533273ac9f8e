package audit

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every checkpoint the store commits lands in the log, once, signed; the
// log survives a reopen without repeating its last line.
func TestCheckpointLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	cl, err := OpenCheckpointLog(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Config{Dir: t.TempDir(), OnCheckpoint: cl.Append})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	last, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Append(last); err != nil { // a repeat is skipped
		t.Fatal(err)
	}
	keys := s.VerifierKeys()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cps, err := ReadCheckpointLog(f)
	if err != nil {
		t.Fatal(err)
	}
	// Open (size 0), Checkpoint (size 3), Close (size 3, a later time).
	if len(cps) != 3 || cps[0].Size != 0 || cps[1].Size != 3 || cps[2].Size != 3 {
		t.Fatalf("log holds %d checkpoints: %+v", len(cps), cps)
	}
	for i, cp := range cps {
		if _, err := ParseCheckpoint(cp.Bytes(), keys...); err != nil {
			t.Errorf("line %d: %v", i+1, err)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	cl2, err := OpenCheckpointLog(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl2.Append(cps[2]); err != nil {
		t.Fatal(err)
	}
	cl2.Close()
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), "\n"); n != 3 {
		t.Errorf("after reopening and appending the last again: %d lines, want 3", n)
	}
	// A torn last line is skipped; a bad line before others is an error.
	if got, err := ReadCheckpointLog(strings.NewReader(string(b) + `{"origin":"x","no`)); err != nil || len(got) != 3 {
		t.Errorf("torn tail: %d, %v", len(got), err)
	}
	if _, err := ReadCheckpointLog(strings.NewReader("garbage\n" + string(b))); err == nil {
		t.Error("a bad first line was accepted")
	}
}

// FuzzReadCheckpointLog: any file content either parses or is an error;
// never a panic, and every checkpoint returned has a note.
func FuzzReadCheckpointLog(f *testing.F) {
	f.Add([]byte(`{"origin":"loggate/audit","size":1,"note":"x"}` + "\n"))
	f.Add([]byte("garbage\n{}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		cps, err := ReadCheckpointLog(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for i, cp := range cps {
			if cp.Note == "" {
				t.Fatalf("checkpoint %d has no note", i)
			}
		}
	})
}

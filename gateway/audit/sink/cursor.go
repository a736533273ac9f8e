package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// CursorStore keeps a Runner's cursor: the seq of the last event delivered.
type CursorStore interface {
	// Load returns the saved seq, or 0 when none was saved yet.
	Load(ctx context.Context) (int64, error)
	// Save records seq as delivered.
	Save(ctx context.Context, seq int64) error
}

// FileCursor is a CursorStore in a file (the default: Config.CursorFile).
type FileCursor string

// Load implements CursorStore.
func (f FileCursor) Load(context.Context) (int64, error) { return readCursor(string(f)) }

// Save implements CursorStore; the file is replaced atomically.
func (f FileCursor) Save(_ context.Context, seq int64) error { return writeCursor(string(f), seq) }

// readCursor returns the seq saved in path, or 0 if the file does not exist.
func readCursor(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor: %w", err)
	}
	return parseCursor(b)
}

func parseCursor(b []byte) (int64, error) {
	s := string(bytes.TrimSpace(b))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("cursor file holds %q, want a seq", s)
	}
	return n, nil
}

// writeCursor replaces path with seq: write a temporary file, fsync, rename,
// fsync the directory. A crash leaves the old or the new cursor, never a
// torn one.
func writeCursor(path string, seq int64) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write cursor: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(strconv.FormatInt(seq, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write cursor: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// FileConfig configures NewFile.
type FileConfig struct {
	// Path is the file being written (required), e.g. /var/log/loggate/audit.ndjson.
	// Rotated files sit beside it, named with the rotation time:
	// audit-20250102T150405.000000000Z.ndjson.
	Path string
	// MaxBytes rotates the file before a line would take it past this size.
	// If zero, 64 MiB.
	MaxBytes int64
	// MaxFiles is how many rotated files are kept (the oldest are removed).
	// If zero, all are kept.
	MaxFiles int
	// Now names rotated files. If nil, time.Now.
	Now func() time.Time
}

// File appends each event's NDJSON line (audit.Record.Line) to a file,
// fsyncs after every batch and rotates by size. Files are created 0600.
// A line torn by a crash is cut off when the file is reopened (its batch
// was not acknowledged, so it is written again).
type File struct {
	cfg  FileConfig
	f    *os.File // owned by the Runner goroutine that calls Deliver
	size int64
	buf  []byte
}

// NewFile validates cfg and opens (or creates) the file.
func NewFile(cfg FileConfig) (*File, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit file sink: Path is required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 64 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit file sink: %w", err)
	}
	s := &File{cfg: cfg}
	if err := s.open(); err != nil {
		return nil, fmt.Errorf("audit file sink: %w", err)
	}
	return s, nil
}

// open opens the current file for appending, cutting off a torn last line.
func (s *File) open() error {
	f, err := os.OpenFile(s.cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	size, err := cutTornLine(f)
	if err == nil {
		_, err = f.Seek(size, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("open %s: %w", s.cfg.Path, err)
	}
	s.f, s.size = f, size
	return nil
}

// maxLine bounds a line: a record (audit.MaxRecordBytes) and its hash.
const maxLine = audit.MaxRecordBytes + 128

// cutTornLine truncates f after its last newline and returns the new size.
func cutTornLine(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	win := min(size, 2*maxLine)
	tail := make([]byte, win)
	if _, err := f.ReadAt(tail, size-win); err != nil {
		return 0, err
	}
	if tail[win-1] == '\n' {
		return size, nil
	}
	i := bytes.LastIndexByte(tail, '\n')
	if i < 0 && win < size {
		return 0, fmt.Errorf("no line end in the last %d bytes", win)
	}
	keep := size - win + int64(i) + 1
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	return keep, f.Sync()
}

// Deliver appends the batch, rotating as needed, and fsyncs.
func (s *File) Deliver(ctx context.Context, recs []audit.Record) error {
	if err := s.begin(); err != nil {
		return err
	}
	for _, r := range recs {
		if err := s.add(r.Line()); err != nil {
			return err
		}
	}
	return s.write()
}

// DeliverCheckpoint appends cp as one line, CheckpointJSON(cp), and
// fsyncs. `loggate audit verify --checkpoint FILE` accepts such a file and
// checks the trail against its newest checkpoint line.
func (s *File) DeliverCheckpoint(ctx context.Context, cp audit.Checkpoint) error {
	if err := s.begin(); err != nil {
		return err
	}
	if err := s.add(append(CheckpointJSON(cp), '\n')); err != nil {
		return err
	}
	return s.write()
}

// begin opens the file if needed and empties the buffer.
func (s *File) begin() error {
	if s.f == nil {
		if err := s.open(); err != nil {
			return fmt.Errorf("file sink: %w", err)
		}
	}
	s.buf = s.buf[:0]
	return nil
}

// add buffers one line, first writing out and rotating when the line would
// take the file past MaxBytes.
func (s *File) add(line []byte) error {
	if s.size+int64(len(s.buf)) > 0 && s.size+int64(len(s.buf)+len(line)) > s.cfg.MaxBytes {
		if err := s.write(); err != nil {
			return err
		}
		if err := s.rotate(); err != nil {
			return err
		}
	}
	s.buf = append(s.buf, line...)
	return nil
}

// write appends the buffered lines and fsyncs. On a short write the file is
// cut back to its last good size so no torn line stays behind.
func (s *File) write() error {
	if len(s.buf) == 0 {
		return nil
	}
	n, err := s.f.Write(s.buf)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		if n > 0 {
			s.f.Truncate(s.size)
			s.f.Seek(s.size, io.SeekStart)
		}
		return fmt.Errorf("file sink write: %w", err)
	}
	s.size += int64(n)
	s.buf = s.buf[:0]
	return nil
}

// rotate renames the current file aside, opens a fresh one and prunes.
func (s *File) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink rotate: %w", err)
	}
	s.f = nil
	dir, base := filepath.Split(s.cfg.Path)
	ext := filepath.Ext(base)
	stem := strings.TrimSuffix(base, ext)
	stamp := s.cfg.Now().UTC().Format("20060102T150405.000000000Z")
	to := filepath.Join(dir, stem+"-"+stamp+ext)
	for i := 1; fileExists(to); i++ {
		to = filepath.Join(dir, fmt.Sprintf("%s-%s-%d%s", stem, stamp, i, ext))
	}
	if err := os.Rename(s.cfg.Path, to); err != nil {
		return fmt.Errorf("file sink rotate: %w", err)
	}
	if err := s.open(); err != nil {
		return fmt.Errorf("file sink rotate: %w", err)
	}
	if err := syncDir(filepath.Dir(s.cfg.Path)); err != nil {
		return fmt.Errorf("file sink rotate: %w", err)
	}
	return s.prune(dir, stem, ext)
}

// Rotated returns the rotated files, oldest first.
func (s *File) Rotated() ([]string, error) {
	dir, base := filepath.Split(s.cfg.Path)
	ext := filepath.Ext(base)
	return rotated(dir, strings.TrimSuffix(base, ext), ext)
}

func rotated(dir, stem, ext string) ([]string, error) {
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, stem+"-") && strings.HasSuffix(n, ext) && len(n) > len(stem)+len(ext)+1 {
			out = append(out, filepath.Join(dir, n))
		}
	}
	// Names embed a fixed-width UTC time, so they sort by age; a "-N"
	// suffix for the same instant sorts after its base name.
	slices.SortFunc(out, func(a, b string) int {
		return strings.Compare(strings.TrimSuffix(a, ext), strings.TrimSuffix(b, ext))
	})
	return out, nil
}

func (s *File) prune(dir, stem, ext string) error {
	if s.cfg.MaxFiles <= 0 {
		return nil
	}
	files, err := rotated(dir, stem, ext)
	if err != nil {
		return fmt.Errorf("file sink prune: %w", err)
	}
	for len(files) > s.cfg.MaxFiles {
		if err := os.Remove(files[0]); err != nil {
			return fmt.Errorf("file sink prune: %w", err)
		}
		files = files[1:]
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Close closes the file.
func (s *File) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

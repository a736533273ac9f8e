package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"
)

// follower reads a file like `tail -F`: it keeps reading as the file
// grows, notices when the path is renamed away and a new file created
// (rotation), reads the old file to its end first, then continues with the
// new one from its start; a truncated file (copytruncate) is read again
// from the start.
type follower struct {
	path    string
	fromEnd bool
	follow  bool
	poll    time.Duration
	notef   func(format string, a ...any)
}

func (f *follower) run(ctx context.Context, out chan<- []byte) error {
	defer close(out)
	file, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.path, err)
	}
	defer func() { file.Close() }()
	lr := newLineReader(file)
	if f.fromEnd {
		end, err := file.Seek(0, io.SeekEnd)
		if err != nil {
			return fmt.Errorf("seek %s: %w", f.path, err)
		}
		lr.reset(file)
		lr.offset = end
	}
	emit := func(line []byte) error {
		if b := toNDJSON(line); b != nil {
			select {
			case out <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	// drain reads every complete line available now.
	drain := func() error {
		for {
			line, complete, err := lr.next()
			if complete {
				if err := emit(line); err != nil {
					return err
				}
				continue
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read %s: %w", f.path, err)
		}
	}
	for {
		if err := drain(); err != nil {
			return err
		}
		if !f.follow {
			return emit(lr.rest())
		}
		cur, err := file.Stat()
		if err != nil {
			return fmt.Errorf("stat %s: %w", f.path, err)
		}
		onDisk, err := os.Stat(f.path)
		switch {
		case err == nil && !os.SameFile(cur, onDisk):
			// Rotated: finish the old file (a writer may have added lines
			// just before the rename), then switch to the new one.
			if err := drain(); err != nil {
				return err
			}
			if err := emit(lr.rest()); err != nil {
				return err
			}
			next, err := os.Open(f.path)
			if err != nil {
				break // created but gone again: try on the next poll
			}
			file.Close()
			file = next
			lr.reset(file)
			f.notef("%s was rotated; following the new file", f.path)
			continue
		case err == nil && cur.Size() < lr.offset:
			if _, err := file.Seek(0, io.SeekStart); err != nil {
				return fmt.Errorf("seek %s: %w", f.path, err)
			}
			lr.reset(file)
			lr.rest()
			f.notef("%s was truncated; reading it from the start", f.path)
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("stat %s: %w", f.path, err)
		}
		// Renamed away and not yet recreated, or simply no new lines: wait.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(f.poll):
		}
	}
}

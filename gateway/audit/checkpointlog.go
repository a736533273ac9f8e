package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// CheckpointLog is an append-only file of signed checkpoints, one JSON
// object (a Checkpoint, the signed note included) per line, kept apart from
// the trail (another mount, ideally append-only or WORM there too) so that
// an independent copy of every checkpoint exists: `loggate audit verify
// --checkpoint FILE` checks the trail against its newest line, and anyone
// can check the notes with the published verifier keys.
//
// The file is opened O_APPEND and each line is fsync'd; nothing is ever
// rewritten. It is safe for concurrent use.
type CheckpointLog struct {
	mu   sync.Mutex
	f    *os.File
	last string // note of the last line written or found, to skip repeats
}

// OpenCheckpointLog opens (creating with mode 0600) the file at path for
// appending. An existing file's last line is read so that a checkpoint
// already there is not written twice.
func OpenCheckpointLog(path string) (*CheckpointLog, error) {
	last, err := readLastCheckpoint(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	return &CheckpointLog{f: f, last: last.Note}, nil
}

// Append writes cp as one line and fsyncs, unless it is the checkpoint
// written last.
func (l *CheckpointLog) Append(cp Checkpoint) error {
	if cp.Note == "" {
		return fmt.Errorf("checkpoint log: %w: checkpoint without a note", ErrInvalid)
	}
	b, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("checkpoint log: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("checkpoint log: closed")
	}
	if cp.Note == l.last {
		return nil
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("checkpoint log: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("checkpoint log: %w", err)
	}
	l.last = cp.Note
	return nil
}

// Close closes the file; later Appends fail.
func (l *CheckpointLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadCheckpointLog parses a checkpoint log. Signatures are not checked
// here (ParseCheckpoint with the verifier keys does that); a line that is
// not a checkpoint is an error naming it, except a torn last line (a crash
// mid-write), which is skipped.
func ReadCheckpointLog(r io.Reader) ([]Checkpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []Checkpoint
	var bad error
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if bad != nil {
			return nil, bad // a bad line that was not the last
		}
		var cp Checkpoint
		if err := json.Unmarshal(line, &cp); err != nil || cp.Note == "" {
			bad = fmt.Errorf("%w: checkpoint log line %d is not a checkpoint", ErrInvalid, n)
			continue
		}
		out = append(out, cp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("checkpoint log: %w", err)
	}
	return out, nil
}

func readLastCheckpoint(path string) (Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return Checkpoint{}, err
	}
	defer f.Close()
	cps, err := ReadCheckpointLog(f)
	if err != nil || len(cps) == 0 {
		return Checkpoint{}, err
	}
	return cps[len(cps)-1], nil
}

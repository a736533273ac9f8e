package witness

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// ErrState means the state file cannot be used: corrupt, of another version,
// or of another trail. The file is left as it is.
var ErrState = errors.New("witness state")

// stateVersion is the format written by Save.
const stateVersion = 1

// maxStateBytes bounds what LoadState reads.
const maxStateBytes = 1 << 20

// State is what a witness keeps between runs: the newest signed checkpoint
// it accepted and every verifier key it has seen in the trail's published
// key history. Size, RootHash, Origin and KeyID repeat the checkpoint for
// people reading the file; ParseState checks they agree with it.
type State struct {
	Version    int       `json:"version"`
	Server     string    `json:"server,omitempty"` // where it was fetched (informational)
	Origin     string    `json:"origin"`
	Size       int64     `json:"size"`
	RootHash   string    `json:"root_hash"`
	KeyID      string    `json:"key_id"`
	Checkpoint string    `json:"checkpoint"` // the signed note
	Keys       []string  `json:"verifier_keys"`
	CheckedAt  time.Time `json:"checked_at"`
}

// checkpoint returns the state's checkpoint, verified under its keys.
func (s *State) checkpoint() (audit.Checkpoint, error) {
	if len(s.Keys) == 0 {
		return audit.Checkpoint{}, fmt.Errorf("%w: no verifier keys", ErrState)
	}
	cp, err := audit.ParseCheckpoint([]byte(s.Checkpoint), s.Keys...)
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("%w: its checkpoint does not verify under its own keys: %v", ErrState, err)
	}
	return cp, nil
}

// ParseState reads a state file strictly: known fields only, version 1, a
// checkpoint that verifies under the listed keys and agrees with the
// fields beside it. Any problem wraps ErrState.
func ParseState(b []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%w: not a witness state file: %v", ErrState, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", ErrState)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrState, s.Version, stateVersion)
	}
	cp, err := s.checkpoint()
	if err != nil {
		return nil, err
	}
	if cp.Origin != s.Origin || cp.Size != s.Size || cp.RootHash != s.RootHash {
		return nil, fmt.Errorf("%w: origin, size or root_hash disagree with its signed checkpoint", ErrState)
	}
	return &s, nil
}

// LoadState reads the state file at path; (nil, nil) when there is none
// (a first run).
func LoadState(path string) (*State, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrState, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %v", ErrState, path, err)
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrState, path, maxStateBytes)
	}
	s, err := ParseState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Save writes s to path atomically with mode 0600: a temporary file in the
// same directory, fsync'd, renamed over path, the directory fsync'd. A
// failure leaves the old file as it was.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("witness state: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("witness state: %w", err)
	}
	tmp := f.Name()
	werr := f.Chmod(0o600)
	if werr == nil {
		_, werr = f.Write(b)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("witness state: write %s: %w", path, werr)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("witness state: sync %s: %w", dir, err)
		}
	}
	return nil
}

package audit

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ViewCounts are what a live view had sent when last saved: the figures a
// stream.closed written after a crash reports (counts_from "checkpoint").
type ViewCounts struct {
	ViewID  string `json:"view_id"`
	Entries int64  `json:"entries"`
	Bytes   int64  `json:"bytes"`
	Dropped int64  `json:"dropped"`
	Sampled int64  `json:"sampled"`
	Paused  int64  `json:"paused,omitempty"`
	// EntriesDigest is the view's per-entry digest (entries_sha256) over
	// the same entries.
	EntriesDigest string `json:"entries_sha256,omitempty"`
	// Digest is the view's digest over exactly the messages counted here
	// (for "sha256-chained" the chain value, for "sha256" the hash of the
	// bytes sent so far), so it matches Entries and Bytes.
	Digest     string           `json:"sha256,omitempty"`
	DigestKind string           `json:"digest_kind,omitempty"`
	Redactions map[string]int64 `json:"redactions,omitempty"`
	Seconds    int64            `json:"seconds"`
	// At is when the counts were saved.
	At time.Time `json:"at"`
	// Gen orders the saves (the newer of the file's two slots wins).
	Gen uint64 `json:"gen"`
}

// ViewCountsDir keeps one small file per live view under a directory of
// the replica's --data. A save is one positioned write, without fsync: it
// survives the process being killed (the page cache keeps it), not a power
// cut, after which the frame checks fail and the last stream.progress event
// is used instead. Each file has two slots written in turn, each framed with
// a length and a CRC-32C, so a torn save leaves the previous one readable.
type ViewCountsDir struct {
	dir string
}

// ViewCountsFile is the open file of one view; only the view's serving
// goroutine uses it.
type ViewCountsFile struct {
	f    *os.File
	path string
	gen  uint64
}

const (
	viewSlot   = 2048
	viewSuffix = ".counts"
)

// OpenViewCountsDir creates dir (mode 0700) if needed.
func OpenViewCountsDir(dir string) (*ViewCountsDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("view counts: %w", err)
	}
	return &ViewCountsDir{dir: dir}, nil
}

func validViewID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (d *ViewCountsDir) path(viewID string) string {
	return filepath.Join(d.dir, viewID+viewSuffix)
}

// Create opens a fresh counts file for a view.
func (d *ViewCountsDir) Create(viewID string) (*ViewCountsFile, error) {
	if !validViewID(viewID) {
		return nil, fmt.Errorf("%w: view id %q", ErrInvalid, viewID)
	}
	p := d.path(viewID)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("view counts: %w", err)
	}
	return &ViewCountsFile{f: f, path: p}, nil
}

// Save writes c to the next slot. c.ViewID, Gen and At are kept as given
// except Gen, which Save assigns.
func (vf *ViewCountsFile) Save(c ViewCounts) error {
	vf.gen++
	c.Gen = vf.gen
	b, err := encodeViewSlot(c)
	if err != nil {
		return err
	}
	if _, err := vf.f.WriteAt(b, int64(vf.gen%2)*viewSlot); err != nil {
		return fmt.Errorf("view counts: %w", err)
	}
	return nil
}

// Close closes the file and, with remove, deletes it (the view's
// stream.closed is in the trail or the spool).
func (vf *ViewCountsFile) Close(remove bool) error {
	err := vf.f.Close()
	if remove {
		if rerr := os.Remove(vf.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func encodeViewSlot(c ViewCounts) ([]byte, error) {
	payload, err := json.Marshal(c)
	if err == nil && len(payload) > viewSlot-spoolHeader {
		c.Redactions = nil // many rules: keep the counts, drop the breakdown
		payload, err = json.Marshal(c)
	}
	if err != nil {
		return nil, fmt.Errorf("view counts: %w", err)
	}
	if len(payload) > viewSlot-spoolHeader {
		return nil, fmt.Errorf("%w: view counts encode to %d bytes", ErrInvalid, len(payload))
	}
	out := make([]byte, viewSlot)
	copy(out, "LGV1")
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[8:], crc32.Checksum(payload, crcTable))
	copy(out[spoolHeader:], payload)
	return out, nil
}

func decodeViewSlot(b []byte) (ViewCounts, error) {
	if len(b) < spoolHeader || string(b[:4]) != "LGV1" {
		return ViewCounts{}, errors.New("no view counts header")
	}
	n := binary.BigEndian.Uint32(b[4:])
	if uint64(n) > uint64(len(b)-spoolHeader) {
		return ViewCounts{}, errors.New("view counts torn")
	}
	payload := b[spoolHeader : spoolHeader+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return ViewCounts{}, errors.New("view counts checksum mismatch")
	}
	var c ViewCounts
	if err := json.Unmarshal(payload, &c); err != nil {
		return ViewCounts{}, err
	}
	return c, nil
}

// Load returns the newest intact save of a view, if any.
func (d *ViewCountsDir) Load(viewID string) (ViewCounts, bool) {
	if !validViewID(viewID) {
		return ViewCounts{}, false
	}
	b, err := os.ReadFile(d.path(viewID))
	if err != nil {
		return ViewCounts{}, false
	}
	var best ViewCounts
	found := false
	for off := 0; off < len(b); off += viewSlot {
		c, err := decodeViewSlot(b[off:min(len(b), off+viewSlot)])
		if err != nil || c.ViewID != viewID {
			continue
		}
		if !found || c.Gen > best.Gen {
			best, found = c, true
		}
	}
	return best, found
}

// RemoveAll deletes every counts file: at start-up, once the views they
// belong to are closed in the trail.
func (d *ViewCountsDir) RemoveAll() error {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("view counts: %w", err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), viewSuffix) {
			if err := os.Remove(filepath.Join(d.dir, e.Name())); err != nil {
				return fmt.Errorf("view counts: %w", err)
			}
		}
	}
	return nil
}

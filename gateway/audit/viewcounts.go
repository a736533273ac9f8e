package audit

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
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

	// Record is the view's replay record (opaque JSON: the gateway's
	// logs.ViewRecord) over the same delivered messages as the counts,
	// except that its last range ends at RecordTo. On Save it is written
	// only when non-nil (the record's shape changed: a drop, a pause, a
	// filter change); a nil Record keeps the last one written. Load
	// returns the record the save referred to.
	Record json.RawMessage `json:"-"`
	// RecordTo is where the record's last delivered range ended at this
	// save: the one part of the record that moves on every message, so it
	// travels in the small slot.
	RecordTo int64 `json:"record_to,omitempty"`
	// RecordGen names the record slot this save refers to; zero: none.
	RecordGen uint64 `json:"record_gen,omitempty"`
}

// ViewCountsDir keeps one small file per live view under a directory of
// the replica's --data. A save is one positioned write, without fsync: it
// survives the process being killed (the page cache keeps it), not a power
// cut, after which the frame checks fail and the last stream.progress event
// is used instead. Each file has two slots written in turn, each framed with
// a length and a CRC-32C, so a torn save leaves the previous one readable.
//
// After the two count slots come two record slots of MaxViewRecord bytes,
// also written in turn but only when the record changes shape, so the
// per-interval write stays one 2 KiB slot. A count slot names the record
// slot it goes with (RecordGen), which is written first: a torn record
// leaves the previous count slot and its record readable.
type ViewCountsDir struct {
	dir string
}

// ViewCountsFile is the open file of one view; only the view's serving
// goroutine uses it.
type ViewCountsFile struct {
	f         *os.File
	path      string
	gen       uint64
	recordGen uint64 // the record slot last written; zero: none
}

const (
	viewSlot   = 2048
	viewSuffix = ".counts"
	// MaxViewRecord bounds a saved record (frame included): above the
	// gateway's 40 KiB cap on the record it puts in stream.closed.
	MaxViewRecord = 48 << 10
	recordBase    = 2 * viewSlot
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

// Save writes c to the next slot, after c.Record (when non-nil) to the
// next record slot. Save assigns c.Gen and c.RecordGen; the other fields
// are kept as given.
func (vf *ViewCountsFile) Save(c ViewCounts) error {
	if c.Record != nil {
		if len(c.Record)+spoolHeader+8 > MaxViewRecord {
			return fmt.Errorf("%w: view record of %d bytes", ErrInvalid, len(c.Record))
		}
		gen := vf.recordGen + 1
		out := make([]byte, spoolHeader+8+len(c.Record))
		copy(out, "LGR1")
		binary.BigEndian.PutUint32(out[4:], uint32(8+len(c.Record)))
		binary.BigEndian.PutUint64(out[spoolHeader:], gen)
		copy(out[spoolHeader+8:], c.Record)
		binary.BigEndian.PutUint32(out[8:], crc32.Checksum(out[spoolHeader:], crcTable))
		if _, err := vf.f.WriteAt(out, recordBase+int64(gen%2)*MaxViewRecord); err != nil {
			return fmt.Errorf("view counts: %w", err)
		}
		vf.recordGen = gen
	}
	c.RecordGen = vf.recordGen
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
	var saves []ViewCounts
	for off := 0; off < min(len(b), recordBase); off += viewSlot {
		c, err := decodeViewSlot(b[off:min(len(b), off+viewSlot)])
		if err != nil || c.ViewID != viewID {
			continue
		}
		saves = append(saves, c)
	}
	if len(saves) == 0 {
		return ViewCounts{}, false
	}
	records := map[uint64]json.RawMessage{}
	for off := recordBase; off < len(b); off += MaxViewRecord {
		if gen, rec, ok := decodeRecordSlot(b[off:min(len(b), off+MaxViewRecord)]); ok {
			records[gen] = rec
		}
	}
	// The newest save whose record is intact; else the newest save, without
	// its record (it replays as not recorded).
	slices.SortFunc(saves, func(a, b ViewCounts) int { return cmp.Compare(b.Gen, a.Gen) })
	for _, c := range saves {
		if rec, ok := records[c.RecordGen]; ok && c.RecordGen != 0 {
			c.Record = rec
			return c, true
		}
	}
	c := saves[0]
	c.RecordGen, c.RecordTo = 0, 0
	return c, true
}

func decodeRecordSlot(b []byte) (uint64, json.RawMessage, bool) {
	if len(b) < spoolHeader+8 || string(b[:4]) != "LGR1" {
		return 0, nil, false
	}
	n := binary.BigEndian.Uint32(b[4:])
	if n < 8 || uint64(n) > uint64(len(b)-spoolHeader) {
		return 0, nil, false
	}
	payload := b[spoolHeader : spoolHeader+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return 0, nil, false
	}
	rec := json.RawMessage(payload[8:])
	if !json.Valid(rec) {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(payload), rec, true
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

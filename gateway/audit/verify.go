package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"

	"golang.org/x/mod/sumdb/tlog"
)

// ProblemKind classifies what Verify found.
type ProblemKind string

// Problem kinds.
const (
	ProblemModified     ProblemKind = "modified"      // a record's bytes or hash changed, or the log was rewritten
	ProblemDeleted      ProblemKind = "deleted"       // a gap in seq
	ProblemReordered    ProblemKind = "reordered"     // a record sits at a seq other than its own
	ProblemInserted     ProblemKind = "inserted"      // a record no signature covers (or before seq 1)
	ProblemTruncated    ProblemKind = "truncated"     // a signed checkpoint is larger than the log
	ProblemBadSignature ProblemKind = "bad_signature" // a checkpoint fails its signature, or the head is missing
)

// Problem is one finding. Seq is the first event concerned (0 if none).
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Seq    int64       `json:"seq,omitempty"`
	Detail string      `json:"detail"`
}

// Report is the result of Verify.
type Report struct {
	Events       int64  `json:"events"`                  // rows read
	LastSeq      int64  `json:"last_seq"`                // highest seq seen
	Root         string `json:"root_hash"`               // base64 root recomputed over all records read
	Checkpoints  int    `json:"checkpoints"`             // stored checkpoints checked (head not included)
	Head         int64  `json:"head_size"`               // size stated by the signed head
	Exported     int64  `json:"exported_size"`           // size stated by the exported checkpoint, if given
	Purged       int64  `json:"purged,omitempty"`        // rows whose record retention emptied (hash and tree hashes kept)
	PurgeHorizon int64  `json:"purge_horizon,omitempty"` // seq_to of the newest retention.purged event
	// Spooled counts intact records appended late from a replica's spool
	// (their details carry spooled_at; their time is when they happened).
	Spooled      int64     `json:"spooled,omitempty"`
	Problems     []Problem `json:"problems"`
	MoreProblems int       `json:"more_problems,omitempty"` // problems not listed (over MaxProblems)
}

// spooledMarker finds a spooled event's details.spooled_at in a record
// without decoding it (a string that happens to contain it is counted too:
// the figure is informative, not a check).
var spooledMarker = []byte(`"` + DetailSpooledAt + `":"`)

// OK reports whether no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// VerifyTrail checks one snapshot of a stored trail, from the stored bytes:
// each record's hash and position, the prev_hash links, gapless seq, every
// search column and id index entry against its record, every checkpoint's
// signature, root and stored columns, the signed head (which must cover
// exactly the trail), the chain tip kept apart, the stored tree hashes, and
// the optional exported checkpoint (truncation). It returns an error
// wrapping ErrTampered when any problem is found; other errors mean the
// check could not run.
func VerifyTrail(ctx context.Context, t Trail, opt VerifyOptions) (Report, error) {
	if opt.MaxProblems <= 0 {
		opt.MaxProblems = 1000
	}
	snap, err := t.Snapshot(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	v := &verifier{max: opt.MaxProblems, roots: map[int64]tlog.Hash{}, keys: opt.Keys, snap: snap}
	v.rep.Problems = []Problem{}
	v.loadCheckpoints(opt.Exported)
	v.horizon = snap.PurgeHorizon
	v.rep.PurgeHorizon = v.horizon
	idx, _ := t.(IDIndex)
	if snap.Indexed < 0 {
		idx = nil
	}
	if err := v.scan(ctx, t, idx); err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	v.finish(t.TreeHashes(ctx))
	if !v.rep.OK() {
		return v.rep, fmt.Errorf("audit verify: %d problem(s), first: %s at seq %d: %s: %w",
			len(v.rep.Problems)+v.rep.MoreProblems, v.rep.Problems[0].Kind, v.rep.Problems[0].Seq,
			v.rep.Problems[0].Detail, ErrTampered)
	}
	return v.rep, nil
}

// signedSize is a size some signature vouches for.
type signedSize struct {
	size int64
	root tlog.Hash
	what string // "head", "checkpoint 12", "exported checkpoint"
}

type verifier struct {
	rep   Report
	max   int
	keys  []string
	snap  Snapshot
	sizes []signedSize        // sorted by size
	roots map[int64]tlog.Hash // recomputed roots at the signed sizes
	first int64               // seq of the first chain problem, 0 if none
	head  *signedSize
	// horizon is the highest seq whose record may be empty: seq_to of the
	// newest intact retention.purged event.
	horizon int64
	indexed int64    // rows whose id the IDIndex maps to their seq
	tip     [32]byte // the last row's stored hash
}

func (v *verifier) add(kind ProblemKind, seq int64, format string, args ...any) {
	if v.first == 0 && seq > 0 && kind != ProblemBadSignature && kind != ProblemTruncated {
		v.first = seq
	}
	if len(v.rep.Problems) >= v.max {
		v.rep.MoreProblems++
		return
	}
	v.rep.Problems = append(v.rep.Problems, Problem{Kind: kind, Seq: seq, Detail: fmt.Sprintf(format, args...)})
}

func (v *verifier) loadCheckpoints(exported []byte) {
	for _, c := range v.snap.Checkpoints {
		v.rep.Checkpoints++
		cp, ok := v.addSigned(c.Name, c.Note)
		if !ok {
			continue
		}
		if c.Size != nil && *c.Size != cp.Size {
			v.add(ProblemModified, 0, "%s: column size is %d, the signed note says %d", c.Name, *c.Size, cp.Size)
		}
		if c.TimeNS != nil && *c.TimeNS != cp.Time.UnixNano() {
			v.add(ProblemModified, 0, "%s: column time_ns is %d, the signed note says %d", c.Name, *c.TimeNS, cp.Time.UnixNano())
		}
	}
	switch {
	case v.snap.Head == nil && !v.snap.HeadOptional:
		v.add(ProblemBadSignature, 0, "the signed head is missing")
	case v.snap.Head != nil:
		if cp, ok := v.addSigned("head", v.snap.Head); ok {
			root, _ := cp.Root()
			v.head = &signedSize{size: cp.Size, root: root, what: "head"}
			v.rep.Head = cp.Size
		}
	}
	if len(exported) > 0 {
		if cp, ok := v.addSigned("exported checkpoint", exported); ok {
			v.rep.Exported = cp.Size
		}
	}
	sort.SliceStable(v.sizes, func(i, j int) bool { return v.sizes[i].size < v.sizes[j].size })
}

func (v *verifier) addSigned(what string, note []byte) (Checkpoint, bool) {
	var cp Checkpoint
	var err error
	if len(v.keys) > 0 {
		cp, err = ParseCheckpoint(note, v.keys...)
	} else {
		cp, err = parseCheckpointText(note, nil)
	}
	if err != nil {
		v.add(ProblemBadSignature, 0, "%s: %v", what, err)
		return Checkpoint{}, false
	}
	root, _ := cp.Root() // parsing checked it
	v.sizes = append(v.sizes, signedSize{size: cp.Size, root: root, what: what})
	return cp, true
}

// scan reads every row in seq order, checking each against itself and its
// predecessor and feeding the recomputed tree. Reading rows (the store) and
// checking them (hashing, decoding) run on two goroutines.
func (v *verifier) scan(ctx context.Context, t Trail, idx IDIndex) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan []StoredRow, 4)
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		readErr <- t.Rows(ctx, func(b []StoredRow) error {
			select {
			case batches <- b:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	rec, _ := t.(RowRecycler)
	st := scanState{next: 1, gapless: true}
	var checkErr error
	for b := range batches {
		if checkErr != nil {
			continue // drain until the reader sees the cancel
		}
		ids := make([]string, 0, len(b))
		seqs := make([]int64, 0, len(b))
		for i := range b {
			if id := v.check(&st, &b[i]); id != "" && idx != nil {
				ids, seqs = append(ids, id), append(seqs, b[i].Seq)
			}
		}
		if len(ids) > 0 {
			if checkErr = v.checkIndex(ctx, idx, ids, seqs); checkErr != nil {
				cancel()
			}
		}
		if rec != nil {
			rec.RecycleRows(b) // nothing of b is kept past this point
		}
	}
	if err := <-readErr; err != nil && checkErr == nil {
		return fmt.Errorf("read events: %w", err)
	}
	if checkErr != nil {
		return checkErr
	}
	if st.gapless {
		v.roots[0] = emptyRoot()
	}
	v.tip = st.prevHash
	r := st.tree.root()
	v.rep.Root = base64.StdEncoding.EncodeToString(r[:])
	return nil
}

// checkIndex compares the IDIndex entries of ids with the seqs of their rows.
func (v *verifier) checkIndex(ctx context.Context, idx IDIndex, ids []string, seqs []int64) error {
	got, err := idx.IndexedSeqs(ctx, ids)
	if err != nil {
		return fmt.Errorf("read id index: %w", err)
	}
	for i, id := range ids {
		switch {
		case got[i] == seqs[i]:
			v.indexed++
		case got[i] == 0:
			v.add(ProblemModified, seqs[i], "row seq %d: id index has no entry for %s", seqs[i], id)
		default:
			v.add(ProblemModified, seqs[i], "row seq %d: id index maps %s to seq %d", seqs[i], id, got[i])
		}
	}
	return nil
}

// scanState carries the scan from one row to the next.
type scanState struct {
	tree     compactRange
	prevHash [32]byte // zero before seq 1
	prevBad  bool
	next     int64
	gapless  bool // leaves so far sit at seq == leaf+1
	sizeIdx  int
}

// check verifies one row; it returns the record's event id when the record
// is intact (for the id index), else "".
func (v *verifier) check(st *scanState, r *StoredRow) (id string) {
	seq, rec, hash := r.Seq, r.Record, r.Hash
	v.rep.Events++
	if seq < st.next {
		v.add(ProblemInserted, seq, "row with seq %d before the first event", seq)
		return ""
	}
	gap := seq > st.next
	if gap {
		v.add(ProblemDeleted, st.next, "events %d..%d are missing", st.next, seq-1)
		st.gapless = false
	}
	bad := false
	var leaf tlog.Hash
	if len(rec) == 0 {
		// An emptied record: retention kept its hash (checked by the next
		// record's prev_hash) and its leaf hash (checked by every signed
		// root over it), and may empty only what a retention.purged covers.
		if seq > v.horizon {
			v.add(ProblemModified, seq, "record removed, but retention.purged covers only up to seq %d", v.horizon)
			bad = true
		} else {
			v.rep.Purged++
		}
		if r.Columns != nil {
			for _, d := range purgedColumnDiffs(r.Columns) {
				v.add(ProblemModified, seq, "row seq %d: column %s of a purged event is %q, retention empties it", seq, d.name, d.stored)
			}
		}
		if len(r.Tree) >= tlog.HashSize {
			leaf = tlog.Hash(r.Tree[:tlog.HashSize])
		} else if !bad {
			v.add(ProblemModified, seq, "purged record has no stored leaf hash")
			bad = true
		}
	} else {
		bseq, bprev, err := recordHead(rec)
		switch {
		case err != nil:
			v.add(ProblemModified, seq, "record unreadable: %v", err)
			bad = true
		case bseq != seq:
			v.add(ProblemReordered, seq, "row at seq %d holds the record of seq %d", seq, bseq)
			bad = true
		}
		if !bad {
			if len(hash) != 32 || ChainHash(bprev, rec) != [32]byte(hash) {
				v.add(ProblemModified, seq, "record does not match its hash")
				bad = true
			} else if !gap && !st.prevBad && bprev != st.prevHash {
				v.add(ProblemModified, max(seq-1, 1), "chain broken between seq %d and %d: one of them was rewritten", seq-1, seq)
			}
		}
		if !bad {
			id = v.checkColumns(seq, rec, r.Columns)
			if bytes.Contains(rec, spooledMarker) {
				v.rep.Spooled++
			}
		}
		leaf = tlog.RecordHash(rec)
	}
	made := st.tree.append(leaf)
	if st.gapless && !v.snap.NoTree {
		// The stored tree hashes back inclusion proofs: they must be the
		// ones this leaf creates (tlog.StoredHashes order). Checked only
		// while nothing earlier is wrong (later hashes depend on earlier
		// leaves) and within the signed head (beyond it, "inserted" says it).
		signed := v.head == nil || seq <= v.head.size
		if !bad && v.first == 0 && signed && !equalHashes(r.Tree, made) {
			v.add(ProblemModified, seq, "stored tree hashes of leaf %d do not match the record", seq-1)
		}
	}
	if st.gapless {
		for st.sizeIdx < len(v.sizes) && v.sizes[st.sizeIdx].size <= st.tree.n {
			if v.sizes[st.sizeIdx].size == st.tree.n {
				v.roots[st.tree.n] = st.tree.root()
			}
			st.sizeIdx++
		}
	}
	if len(hash) == 32 {
		st.prevHash = [32]byte(hash)
	}
	st.prevBad = bad
	st.next = seq + 1
	v.rep.LastSeq = seq
	return id
}

// checkColumns compares the stored search columns with the record (which
// matched its hash) and returns the record's event id.
func (v *verifier) checkColumns(seq int64, rec []byte, stored *Columns) string {
	want, err := recordColumnsFast(rec, stored)
	if err != nil {
		v.add(ProblemModified, seq, "record unreadable: %v", err)
		return ""
	}
	if stored != nil {
		for _, d := range diffColumns(stored, &want) {
			v.add(ProblemModified, seq, "row seq %d: column %s is %q, the record says %q", seq, d.name, d.stored, d.rec)
		}
	}
	return want.ID
}

// finish compares every signed size, the chain tip and the index size with
// the trail.
func (v *verifier) finish(tree tlog.HashReader) {
	last := v.rep.LastSeq
	var truncated *signedSize
	for i := range v.sizes {
		s := &v.sizes[i]
		if s.size > last {
			if truncated == nil || s.size > truncated.size {
				truncated = s
			}
			continue
		}
		got, ok := v.roots[s.size]
		explained := v.first != 0 && v.first <= s.size
		if !ok || explained {
			continue // a gap or an earlier problem already accounts for it
		}
		if got != s.root {
			v.add(ProblemModified, 0, "%s (size %d): root does not match the records: the log was rewritten", s.what, s.size)
			v.first = 1
		}
	}
	if truncated != nil {
		v.add(ProblemTruncated, last+1, "%s states %d events but the log ends at seq %d", truncated.what, truncated.size, last)
	}
	if v.head != nil && last > v.head.size {
		v.add(ProblemInserted, v.head.size+1, "events %d..%d are not covered by the signed head (size %d)", v.head.size+1, last, v.head.size)
	}
	if ch := v.snap.ChainHead; ch != nil {
		switch {
		case ch.Seq > last:
			v.add(ProblemTruncated, last+1, "the chain head says %d events, the trail ends at seq %d", ch.Seq, last)
		case ch.Seq < last:
			v.add(ProblemInserted, ch.Seq+1, "events %d..%d are after the chain head (seq %d)", ch.Seq+1, last, ch.Seq)
		case ch.Seq > 0 && ch.Hash != hex.EncodeToString(v.tip[:]):
			v.add(ProblemModified, ch.Seq, "the chain head hash does not match the last record")
		}
	}
	if v.snap.Indexed >= 0 && v.snap.Indexed != v.indexed && v.first == 0 {
		v.add(ProblemModified, 0, "the id index holds %d entries, %d events are indexed correctly", v.snap.Indexed, v.indexed)
	}
	if !v.snap.NoTree && v.head != nil && v.head.size <= last && v.head.size > 0 && v.first == 0 {
		// The stored tree hashes back every proof; they must give the head's root.
		got, err := tlog.TreeHash(v.head.size, tree)
		switch {
		case err != nil:
			v.add(ProblemModified, 0, "stored tree hashes unreadable: %v", err)
		case got != v.head.root:
			v.add(ProblemModified, 0, "stored tree hashes do not give the signed head's root")
		}
	}
}

// compactRange computes RFC 6962 roots incrementally: it keeps the roots of
// the complete subtrees on the right edge, largest first.
type compactRange struct {
	hashes []tlog.Hash
	made   []tlog.Hash
	n      int64
}

// append adds a leaf and returns the hashes it creates: the leaf hash and
// the root of every subtree it completes, which is what tlog.StoredHashes
// returns for the leaf. The slice is reused by the next call.
func (c *compactRange) append(h tlog.Hash) []tlog.Hash {
	c.made = append(c.made[:0], h)
	c.hashes = append(c.hashes, h)
	for i := c.n; i&1 == 1; i >>= 1 {
		k := len(c.hashes)
		c.hashes[k-2] = tlog.NodeHash(c.hashes[k-2], c.hashes[k-1])
		c.hashes = c.hashes[:k-1]
		c.made = append(c.made, c.hashes[k-2])
	}
	c.n++
	return c.made
}

func equalHashes(blob []byte, hs []tlog.Hash) bool {
	if len(blob) != len(hs)*tlog.HashSize {
		return false
	}
	for i, h := range hs {
		if [tlog.HashSize]byte(blob[i*tlog.HashSize:]) != h {
			return false
		}
	}
	return true
}

func (c *compactRange) root() tlog.Hash {
	if len(c.hashes) == 0 {
		return emptyRoot()
	}
	h := c.hashes[len(c.hashes)-1]
	for i := len(c.hashes) - 2; i >= 0; i-- {
		h = tlog.NodeHash(c.hashes[i], h)
	}
	return h
}

func emptyRoot() tlog.Hash {
	h, _ := tlog.TreeHash(0, tlog.HashReaderFunc(func([]int64) ([]tlog.Hash, error) { return nil, nil }))
	return h
}

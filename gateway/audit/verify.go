package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	Events       int64     `json:"events"`                  // rows read
	LastSeq      int64     `json:"last_seq"`                // highest seq seen
	Root         string    `json:"root_hash"`               // base64 root recomputed over all records read
	Checkpoints  int       `json:"checkpoints"`             // stored checkpoints checked (head not included)
	Head         int64     `json:"head_size"`               // size stated by the signed head
	Exported     int64     `json:"exported_size"`           // size stated by the exported checkpoint, if given
	Purged       int64     `json:"purged,omitempty"`        // rows whose record retention emptied (hash and tree hashes kept)
	PurgeHorizon int64     `json:"purge_horizon,omitempty"` // seq_to of the newest retention.purged event
	Problems     []Problem `json:"problems"`
	MoreProblems int       `json:"more_problems,omitempty"` // problems not listed (over MaxProblems)
}

// OK reports whether no problem was found.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// VerifyConfig configures VerifyWith.
type VerifyConfig struct {
	Dir string // store directory (required)
	// Checkpoint is an optional exported checkpoint (Checkpoint.Bytes). Only a
	// checkpoint kept outside the store detects a rollback of the whole tail.
	Checkpoint []byte
	// VerifierKeys are the trusted note verifier keys. If empty, the keys in
	// Dir/keys/audit.pub are used; pass keys from elsewhere for a stronger check.
	VerifierKeys []string
	// MaxProblems bounds Report.Problems. If zero, 1000.
	MaxProblems int
}

// Verify checks the store in dir offline; see VerifyWith.
func Verify(ctx context.Context, dir string, checkpoint []byte) (Report, error) {
	return VerifyWith(ctx, VerifyConfig{Dir: dir, Checkpoint: checkpoint})
}

// VerifyWith opens the store read-only and checks, from the stored bytes:
// each record's hash and position, the prev_hash links, gapless seq, every
// stored checkpoint's signature and root, the signed head (which must cover
// exactly the log), the stored tree hashes, and the optional exported
// checkpoint (truncation). It returns an error wrapping ErrTampered when any
// problem is found; other errors mean the check could not run.
func VerifyWith(ctx context.Context, cfg VerifyConfig) (Report, error) {
	if cfg.MaxProblems <= 0 {
		cfg.MaxProblems = 1000
	}
	keys := cfg.VerifierKeys
	if len(keys) == 0 {
		var err error
		if keys, err = readVerifierKeys(filepath.Join(cfg.Dir, keysDir, verifierFile)); err != nil {
			return Report{}, fmt.Errorf("audit verify: %w", err)
		}
	}
	path := filepath.Join(cfg.Dir, dbFile)
	if _, err := os.Stat(path); err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	v := &verifier{max: cfg.MaxProblems, roots: map[int64]tlog.Hash{}}
	// One read transaction: a consistent snapshot even while a Store writes.
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	defer tx.Rollback()
	if err := v.loadCheckpoints(ctx, tx, keys, cfg.Checkpoint); err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	if v.horizon, err = authorizedHorizon(ctx, tx); err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	v.rep.PurgeHorizon = v.horizon
	if err := v.scan(ctx, tx); err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	v.finish(ctx, tx)
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
	sizes []signedSize        // sorted by size
	roots map[int64]tlog.Hash // recomputed roots at the signed sizes
	first int64               // seq of the first chain problem, 0 if none
	head  *signedSize
	// horizon is the highest seq whose record may be empty: seq_to of the
	// newest intact retention.purged event.
	horizon int64
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

func (v *verifier) loadCheckpoints(ctx context.Context, tx *sql.Tx, keys []string, exported []byte) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, note FROM checkpoints ORDER BY id`)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	for rows.Next() {
		var id int64
		var note string
		if err := rows.Scan(&id, &note); err != nil {
			rows.Close()
			return fmt.Errorf("read checkpoints: %w", err)
		}
		v.rep.Checkpoints++
		v.addSigned(fmt.Sprintf("checkpoint %d", id), []byte(note), keys)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	var note string
	switch err := tx.QueryRowContext(ctx, `SELECT note FROM head WHERE id = 1`).Scan(&note); {
	case errors.Is(err, sql.ErrNoRows):
		v.add(ProblemBadSignature, 0, "the signed head is missing")
	case err != nil:
		return fmt.Errorf("read head: %w", err)
	default:
		if s, ok := v.addSigned("head", []byte(note), keys); ok {
			v.head = &s
			v.rep.Head = s.size
		}
	}
	if len(exported) > 0 {
		if s, ok := v.addSigned("exported checkpoint", exported, keys); ok {
			v.rep.Exported = s.size
		}
	}
	sort.SliceStable(v.sizes, func(i, j int) bool { return v.sizes[i].size < v.sizes[j].size })
	return nil
}

func (v *verifier) addSigned(what string, note []byte, keys []string) (signedSize, bool) {
	cp, err := ParseCheckpoint(note, keys...)
	if err != nil {
		v.add(ProblemBadSignature, 0, "%s: %v", what, err)
		return signedSize{}, false
	}
	root, _ := cp.Root() // ParseCheckpoint checked it
	s := signedSize{size: cp.Size, root: root, what: what}
	v.sizes = append(v.sizes, s)
	return s, true
}

// scan reads every record in seq order, checking each against itself and its
// predecessor and feeding the recomputed tree. Reading rows (SQLite) and
// checking them (hashing) run on two goroutines.
func (v *verifier) scan(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT e.seq, e.record, e.hash, t.hashes
		FROM events e LEFT JOIN tree t ON t.leaf = e.seq - 1 ORDER BY e.seq`)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	batches := make(chan scanBatch, 4)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		readRows(rows, batches, stop)
	}()
	defer func() {
		close(stop)
		<-done
		rows.Close()
	}()

	st := scanState{next: 1, gapless: true}
	for b := range batches {
		for i := range b.rows {
			v.check(&st, &b.rows[i])
		}
		if b.err != nil {
			return fmt.Errorf("read events: %w", b.err)
		}
	}
	if st.gapless {
		v.roots[0] = emptyRoot()
	}
	r := st.tree.root()
	v.rep.Root = base64.StdEncoding.EncodeToString(r[:])
	return nil
}

type scanRow struct {
	seq               int64
	rec, hash, stored []byte // stored is nil when the tree row is missing
}

type scanBatch struct {
	rows []scanRow
	err  error // set on the last batch if reading failed
}

// readRows copies rows into batches until the rows end or stop is closed;
// it closes out when done.
func readRows(rows *sql.Rows, out chan<- scanBatch, stop <-chan struct{}) {
	defer close(out)
	const size = 1024
	for {
		b := scanBatch{rows: make([]scanRow, 0, size)}
		more := true
		for len(b.rows) < size {
			if more = rows.Next(); !more {
				b.err = rows.Err()
				break
			}
			var r scanRow
			var rec, hash, stored sql.RawBytes
			if err := rows.Scan(&r.seq, &rec, &hash, &stored); err != nil {
				b.err, more = err, false
				break
			}
			// One allocation per row; capacity is exact, so no append moves it.
			buf := make([]byte, 0, len(rec)+len(hash)+len(stored))
			buf = append(buf, rec...)
			r.rec = buf[:len(rec):len(rec)]
			buf = append(buf, hash...)
			r.hash = buf[len(rec):len(buf):len(buf)]
			if stored != nil {
				r.stored = append(buf, stored...)[len(buf):]
			}
			b.rows = append(b.rows, r)
		}
		select {
		case out <- b:
		case <-stop:
			return
		}
		if !more {
			return
		}
	}
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

func (v *verifier) check(st *scanState, r *scanRow) {
	seq, rec, hash := r.seq, r.rec, r.hash
	v.rep.Events++
	if seq < st.next {
		v.add(ProblemInserted, seq, "row with seq %d before the first event", seq)
		return
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
		if len(r.stored) >= tlog.HashSize {
			leaf = tlog.Hash(r.stored[:tlog.HashSize])
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
		leaf = tlog.RecordHash(rec)
	}
	made := st.tree.append(leaf)
	if st.gapless {
		// The stored tree hashes back inclusion proofs: they must be the
		// ones this leaf creates (tlog.StoredHashes order). Checked only
		// while nothing earlier is wrong (later hashes depend on earlier
		// leaves) and within the signed head (beyond it, "inserted" says it).
		signed := v.head == nil || seq <= v.head.size
		if !bad && v.first == 0 && signed && !equalHashes(r.stored, made) {
			v.add(ProblemModified, seq, "stored tree hashes of leaf %d do not match the record", seq-1)
		}
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
}

// finish compares every signed size with the log.
func (v *verifier) finish(ctx context.Context, tx *sql.Tx) {
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
	if v.head != nil && v.head.size <= last && v.head.size > 0 && v.first == 0 {
		// The stored tree hashes back every inclusion proof; they must give the head's root.
		got, err := tlog.TreeHash(v.head.size, &hashReader{ctx: ctx, q: tx})
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

package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

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

// VerifyWith opens the store read-only and runs VerifyTrail over one read
// transaction of it (a consistent snapshot even while a Store writes): every
// record, search column, tree hash, checkpoint and the head.
func VerifyWith(ctx context.Context, cfg VerifyConfig) (Report, error) {
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
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)&_pragma=mmap_size(4294967296)")
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(2)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	defer tx.Rollback()
	t, err := beginTrail(ctx, db, tx)
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	if t.tx2 != nil {
		defer t.tx2.Rollback()
	}
	return VerifyTrail(ctx, t, VerifyOptions{Keys: keys, Exported: cfg.Checkpoint, MaxProblems: cfg.MaxProblems})
}

// beginTrail takes the snapshot of tx and, for a trail long enough to
// split, a second read transaction on db at the same snapshot.
func beginTrail(ctx context.Context, db *sql.DB, tx *sql.Tx) (sqliteTrail, error) {
	t := sqliteTrail{tx: tx, pool: &rowPool{out: map[*StoredRow]*rowBuf{}}}
	var err error
	if t.last, err = maxSeq(ctx, tx); err != nil {
		return t, err
	}
	// A second reader on a second connection reads every other range of
	// rows while the first reads the rest (the read is the slow half of a
	// verify; the checker keeps up on the other core). Both must read the
	// same trail: a read transaction's snapshot starts at its first read,
	// so the second is used only if it sees the same last seq (an event
	// appended between the two would change it, and a purge appends its
	// retention.purged event before it empties any record).
	if t.last > 2*rowsRange {
		if tx2, err := db.BeginTx(ctx, nil); err == nil {
			if last2, err := maxSeq(ctx, tx2); err == nil && last2 == t.last {
				t.tx2 = tx2
			} else {
				tx2.Rollback()
			}
		}
	}
	return t, nil
}

func maxSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM events`).Scan(&n)
	return n, err
}

// sqliteTrail reads a store file through one read transaction, and, when
// tx2 is set, a second one on the same snapshot for half of the rows.
type sqliteTrail struct {
	tx, tx2 *sql.Tx
	last    int64    // the largest seq when the snapshot was taken
	pool    *rowPool // batch memory handed back by RecycleRows
}

// RecycleRows takes back a batch Rows handed out, once its caller keeps
// nothing of it, so the next batch reuses its memory.
func (t sqliteTrail) RecycleRows(b []StoredRow) { t.pool.put(b) }

// rowBuf is one batch's memory: its rows, their columns, and the byte arena
// their records, hashes and tree hashes point into.
type rowBuf struct {
	rows  []StoredRow
	cols  []Columns
	spans []rowSpan
	arena []byte
}

// rowSpan is where a row's bytes sit in its batch's arenas.
type rowSpan struct {
	rec, hash, tree, treeEnd, packed, packedEnd int
	hasTree                                     bool // the row has stored tree hashes (a NULL is not an empty value)
}

// rowPool keeps the rowBufs handed back, and which batch is whose.
type rowPool struct {
	mu   sync.Mutex
	out  map[*StoredRow]*rowBuf // by the batch's first row
	free []*rowBuf
}

func (p *rowPool) get(size int) *rowBuf {
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		if n := len(p.free); n > 0 {
			rb := p.free[n-1]
			p.free = p.free[:n-1]
			return rb
		}
	}
	return &rowBuf{rows: make([]StoredRow, 0, size), cols: make([]Columns, size), spans: make([]rowSpan, 0, size)}
}

// lend records that b (non-empty) was built in rb.
func (p *rowPool) lend(b []StoredRow, rb *rowBuf) {
	if p == nil {
		return
	}
	p.mu.Lock()
	p.out[&b[0]] = rb
	p.mu.Unlock()
}

func (p *rowPool) put(b []StoredRow) {
	if p == nil || len(b) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rb, ok := p.out[&b[0]]
	if !ok {
		return
	}
	delete(p.out, &b[0])
	if len(p.free) < 8 {
		p.free = append(p.free, rb)
	}
}

var _ Trail = sqliteTrail{}

func (t sqliteTrail) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Indexed: -1}
	rows, err := t.tx.QueryContext(ctx, `SELECT id, size, time_ns, note FROM checkpoints ORDER BY id`)
	if err != nil {
		return snap, fmt.Errorf("read checkpoints: %w", err)
	}
	for rows.Next() {
		var id, size, ns int64
		var note string
		if err := rows.Scan(&id, &size, &ns, &note); err != nil {
			rows.Close()
			return snap, fmt.Errorf("read checkpoints: %w", err)
		}
		snap.Checkpoints = append(snap.Checkpoints, StoredCheckpoint{Name: fmt.Sprintf("checkpoint %d", id),
			Note: []byte(note), Size: &size, TimeNS: &ns})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return snap, fmt.Errorf("read checkpoints: %w", err)
	}
	var note string
	switch err := t.tx.QueryRowContext(ctx, `SELECT note FROM head WHERE id = 1`).Scan(&note); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return snap, fmt.Errorf("read head: %w", err)
	default:
		snap.Head = []byte(note)
	}
	if snap.PurgeHorizon, err = authorizedHorizon(ctx, t.tx); err != nil {
		return snap, err
	}
	return snap, nil
}

func (t sqliteTrail) TreeHashes(ctx context.Context) tlog.HashReader {
	return &hashReader{ctx: ctx, q: t.tx}
}

// rowsRange is how many seqs one range query of the two-reader scan covers.
const rowsRange = 4096

var rowsSelect = `SELECT e.seq, e.record, e.hash, t.hashes, e.time_ns, ` + packedColumns + `
		FROM events e LEFT JOIN tree t ON t.leaf = e.seq - 1`

func (t sqliteTrail) Rows(ctx context.Context, fn func([]StoredRow) error) error {
	if t.tx2 == nil {
		return readRows(ctx, t.tx, rowsSelect+` ORDER BY e.seq`, nil, t.pool, fn)
	}
	// Range k holds the seqs in (k*rowsRange, (k+1)*rowsRange]; the first is
	// open below and the last open above, so rows out of place (a seq
	// before 1, or past the snapshot's last) are read as one reader would.
	// Reader w reads ranges w, w+2, …; fn gets them in order.
	last := (t.last - 1) / rowsRange
	type chunk struct {
		rows []StoredRow
		end  bool
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var chans [2]chan chunk
	for w, tx := range [2]*sql.Tx{t.tx, t.tx2} {
		ch := make(chan chunk, 2)
		chans[w] = ch
		wg.Go(func() {
			defer close(ch)
			send := func(c chunk) error {
				select {
				case ch <- c:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			for k := int64(w); k <= last; k += 2 {
				var where string
				var args []any
				switch lo, hi := k*rowsRange, (k+1)*rowsRange; {
				case k == 0:
					where, args = ` WHERE e.seq <= ?`, []any{hi}
				case k == last:
					where, args = ` WHERE e.seq > ?`, []any{lo}
				default:
					where, args = ` WHERE e.seq > ? AND e.seq <= ?`, []any{lo, hi}
				}
				err := readRows(ctx, tx, rowsSelect+where+` ORDER BY e.seq`, args, t.pool, func(b []StoredRow) error {
					return send(chunk{rows: b})
				})
				if send(chunk{end: true, err: err}) != nil || err != nil {
					return
				}
			}
		})
	}
	for k := int64(0); k <= last; k++ {
		ended := false
		for c := range chans[k%2] {
			if c.end {
				if c.err != nil {
					return c.err
				}
				ended = true
				break
			}
			if err := fn(c.rows); err != nil {
				return err
			}
		}
		if !ended { // a reader stopped early: only a cancel does that
			if err := ctx.Err(); err != nil {
				return err
			}
			return fmt.Errorf("read events: range %d ended without its rows", k)
		}
	}
	return nil
}

// readRows runs query on tx and hands its rows to fn in batches, built in
// pool's memory (nil: new memory for each batch).
func readRows(ctx context.Context, tx *sql.Tx, query string, args []any, pool *rowPool, fn func([]StoredRow) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	const size = 1024
	// Each batch's bytes go into one byte arena and one string arena, read
	// back by offset once the batch is complete (an append may move an
	// arena while it fills): two allocations a batch instead of two a row,
	// which was most of the read pass's garbage. The byte arena, rows and
	// columns are reused once the verifier hands the batch back
	// (RecycleRows); the strings are not, as strings must not change.
	var textHint int
	for {
		rb := pool.get(size)
		b, spans, arena := rb.rows[:0], rb.spans[:0], rb.arena[:0]
		var text strings.Builder
		text.Grow(textHint)
		for len(b) < size && rows.Next() {
			var r StoredRow
			var rec, hash, stored, packed sql.RawBytes
			c := &rb.cols[len(b)]
			*c = Columns{}
			if err := rows.Scan(&r.Seq, &rec, &hash, &stored, &c.TimeNS, &packed); err != nil {
				return err
			}
			if packed == nil {
				return fmt.Errorf("event %d: read columns: a search column is NULL", r.Seq)
			}
			if len(b) == 0 {
				// Size the arenas from the first row instead of growing them
				// by doubling (a range query of the two-reader scan starts
				// every 4096 rows).
				if need := (len(rec) + len(hash) + len(stored)) * size * 9 / 8; cap(arena) < need {
					arena = make([]byte, 0, need)
				}
				if textHint == 0 {
					textHint = len(packed) * size * 9 / 8
					text.Grow(textHint)
				}
			}
			sp := rowSpan{rec: len(arena), hasTree: stored != nil}
			arena = append(arena, rec...)
			sp.hash = len(arena)
			arena = append(arena, hash...)
			sp.tree = len(arena)
			arena = append(arena, stored...)
			sp.treeEnd = len(arena)
			sp.packed = text.Len()
			text.Write(packed)
			sp.packedEnd = text.Len()
			spans = append(spans, sp)
			r.Columns = c
			b = append(b, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
		packedAll := text.String()
		for i := range b {
			sp, r := spans[i], &b[i]
			r.Record = arena[sp.rec:sp.hash:sp.hash]
			r.Hash = arena[sp.hash:sp.tree:sp.tree]
			if sp.hasTree {
				r.Tree = arena[sp.tree:sp.treeEnd:sp.treeEnd]
			}
			if err := unpackColumns(packedAll[sp.packed:sp.packedEnd], r.Columns); err != nil {
				return fmt.Errorf("event %d: %w", r.Seq, err)
			}
		}
		rb.rows, rb.spans, rb.arena = b, spans, arena
		textHint = len(packedAll) + len(packedAll)/8
		pool.lend(b, rb)
		if err := fn(b); err != nil {
			return err
		}
		if len(b) < size {
			return nil
		}
	}
}

// packedColumns is the SQL that reads the ten text search columns of
// events e as one value, each as its byte length, ':' and its bytes, so
// that the read pass asks SQLite for six values a row instead of fifteen
// (each value costs the driver a type probe, a copy and two mutex rounds)
// and Go allocates one string a row; unpackColumns splits it without
// copying. A NULL column makes the whole value NULL, which Scan refuses,
// as it refused the column alone.
var packedColumns = func() string {
	var b strings.Builder
	for i, c := range packedColumnNames {
		if i > 0 {
			b.WriteString(" || ")
		}
		fmt.Fprintf(&b, "length(CAST(e.%[1]s AS BLOB)) || ':' || e.%[1]s", c)
	}
	return b.String()
}()

// packedColumnNames is the order of packedColumns; unpackColumns follows it.
var packedColumnNames = [...]string{"id", "action", "outcome", "actor_subject", "actor_email",
	"request_id", "target_request_id", "grant_id", "service", "env"}

// unpackColumns splits a packedColumns value into c's text columns; the
// strings share packed's bytes.
func unpackColumns(packed string, c *Columns) error {
	dst := [...]*string{&c.ID, &c.Action, &c.Outcome, &c.ActorSubject, &c.ActorEmail,
		&c.RequestID, &c.TargetRequestID, &c.GrantID, &c.Service, &c.Env}
	for i, d := range dst {
		n, j := 0, 0
		for j < len(packed) && packed[j] >= '0' && packed[j] <= '9' && j < 10 {
			n = n*10 + int(packed[j]-'0')
			j++
		}
		if j == 0 || j >= len(packed) || packed[j] != ':' || n > len(packed)-j-1 {
			return fmt.Errorf("read column %s: malformed packed columns", packedColumnNames[i])
		}
		*d, packed = packed[j+1:j+1+n], packed[j+1+n:]
	}
	if packed != "" {
		return errors.New("read columns: trailing bytes after the packed columns")
	}
	return nil
}

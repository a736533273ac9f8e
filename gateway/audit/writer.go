package audit

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// Append durably records ev and returns it with ID, Seq, Time (if zero),
// Schema, PrevHash and Hash assigned. It returns only after the transaction
// holding the event is committed with fsync (SQLite WAL, synchronous=FULL).
// Concurrent callers share one transaction (group commit).
//
// A write failure returns an error wrapping ErrUnavailable and leaves no part
// of the event behind. If ctx ends after the event was handed to the writer,
// Append returns an error wrapping ErrUnavailable and context's error: the
// event may still be committed (the trail then says more, never less, than
// what happened), so callers must treat it as a failure and fail closed.
// Use a context detached from the client's request with its own deadline.
//
// An event with an ID is idempotent on it: if the trail already holds that
// id with the same content (an earlier attempt whose outcome was unknown
// landed), Append returns the stored event; with other content it fails
// with ErrInvalid. Without an ID, Append assigns a fresh one.
func (s *Store) Append(ctx context.Context, ev Event) (Event, error) {
	out, err := s.append(ctx, ev)
	if err != nil && errors.Is(err, ErrUnavailable) {
		s.stats.unavailable.Add(1)
	}
	return out, err
}

func (s *Store) append(ctx context.Context, ev Event) (Event, error) {
	if err := Validate(&ev); err != nil {
		return Event{}, fmt.Errorf("audit append: %w", err)
	}
	given := ev.ID != ""
	if !given {
		ev.ID = NewEventID()
	}
	ev.Schema = SchemaVersion
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	ev.Time = ev.Time.UTC()
	ev.Seq, ev.PrevHash, ev.Hash = 0, "", ""
	tail, err := EncodeTail(&ev)
	if err != nil {
		return Event{}, fmt.Errorf("audit append: %w", err)
	}
	req := &appendReq{ev: ev, tail: tail, given: given, done: make(chan appendRes, 1)}

	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return Event{}, fmt.Errorf("audit append: %w: store closed", ErrUnavailable)
	}
	select {
	case s.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return Event{}, fmt.Errorf("audit append: %w: %w", ErrUnavailable, ctx.Err())
	}
	select {
	case res := <-req.done:
		return res.ev, res.err
	case <-ctx.Done():
		return Event{}, fmt.Errorf("audit append: %w: outcome unknown: %w", ErrUnavailable, ctx.Err())
	}
}

// run is the writer goroutine: it owns wdb's write transactions and the chain
// state. It exits when quit is closed, after committing every queued request.
func (s *Store) run() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.CheckpointInterval)
	defer tick.Stop()
	batch := make([]*appendReq, 0, maxBatch)
	for {
		select {
		case r := <-s.reqs:
			batch = s.fill(append(batch[:0], r))
			s.commitBatch(batch)
		case <-tick.C:
			if err := s.checkpoint(context.Background()); err != nil {
				s.log.Error("audit checkpoint failed", "err", err)
			}
		case reply := <-s.ckReqs:
			reply <- s.checkpoint(context.Background())
		case <-s.quit:
			for {
				if batch = s.fill(batch[:0]); len(batch) == 0 {
					return
				}
				s.commitBatch(batch)
			}
		}
	}
}

// fill adds queued requests to batch without waiting, up to maxBatch.
func (s *Store) fill(batch []*appendReq) []*appendReq {
	for len(batch) < maxBatch {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

func (s *Store) commitBatch(batch []*appendReq) {
	if batch = s.answerRepeats(batch); len(batch) == 0 {
		return
	}
	evs, err := s.commit(context.Background(), batch)
	if err != nil {
		s.log.Error("audit append failed", "events", len(batch), "err", err)
	}
	for i, r := range batch {
		if err != nil {
			r.done <- appendRes{err: fmt.Errorf("audit append: %w", err)}
		} else {
			r.done <- appendRes{ev: evs[i]}
		}
	}
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
}

// commit writes batch in one transaction: events, tree hashes and a freshly
// signed head checkpoint. Chain state changes only after COMMIT succeeds; a
// failed commit marks the state dirty so it is reloaded from disk (COMMIT
// may fail after the data reached the file).
func (s *Store) commit(ctx context.Context, batch []*appendReq) (evs []Event, err error) {
	if s.dirty {
		if err := s.loadState(ctx); err != nil {
			return nil, unavailable("reload state", err)
		}
	}
	defer func() {
		if err != nil {
			s.dirty = true
			s.stats.failures.Add(1)
		}
	}()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, unavailable("begin", err)
	}
	defer tx.Rollback() // no-op after Commit
	overlay := make(map[int64]tlog.Hash, 2*len(batch)+8)
	r := &hashReader{ctx: ctx, q: tx, mem: []map[int64]tlog.Hash{overlay, s.st.frontier}}
	size, prev := s.st.size, s.st.last
	evs = make([]Event, len(batch))
	blob := make([]byte, 0, 64*tlog.HashSize)
	evArgs := make([]any, 0, len(batch)*len(eventCols))
	treeArgs := make([]any, 0, len(batch)*len(treeCols))
	for i, req := range batch {
		seq := size + 1
		rec := BuildRecord(seq, prev, req.tail)
		h := ChainHash(prev, rec)
		hs, err := tlog.StoredHashes(size, rec, r)
		if err != nil {
			return nil, unavailable("tree hashes", err)
		}
		first := tlog.StoredHashIndex(0, size)
		blob = blob[:0]
		for j, x := range hs {
			overlay[first+int64(j)] = x
			blob = append(blob, x[:]...)
		}
		ev := req.ev
		evArgs = append(evArgs, seq, ev.ID, ev.Time.UnixNano(), ev.Action, ev.Outcome,
			ev.Actor.Subject, ev.Actor.Email, ev.RequestID, ev.Target.RequestID, ev.Target.GrantID,
			ev.Target.Service, ev.Target.Env, rec, h[:])
		treeArgs = append(treeArgs, size, append([]byte(nil), blob...))
		ev.Seq, ev.PrevHash, ev.Hash = seq, hex.EncodeToString(prev[:]), hex.EncodeToString(h[:])
		evs[i] = ev
		prev, size = h, seq
	}
	if err := s.insertRows(ctx, tx, "events", eventCols, evArgs); err != nil {
		return nil, unavailable("insert events", err)
	}
	if err := s.insertRows(ctx, tx, "tree", treeCols, treeArgs); err != nil {
		return nil, unavailable("insert tree", err)
	}
	root, err := tlog.TreeHash(size, r)
	if err != nil {
		return nil, unavailable("tree root", err)
	}
	cp, err := signCheckpoint(s.key.Load(), s.origin, size, root, s.now())
	if err != nil {
		return nil, unavailable("sign", err)
	}
	if err := putHead(ctx, tx, cp); err != nil {
		return nil, err
	}
	if hook := s.beforeCommit.Load(); hook != nil {
		if err := (*hook)(tx); err != nil {
			return nil, unavailable("commit", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, unavailable("commit", err)
	}
	frontier := make(map[int64]tlog.Hash, 64)
	for _, x := range frontierIndexes(size) {
		h, ok := overlay[x]
		if !ok {
			h = s.st.frontier[x]
		}
		frontier[x] = h
	}
	s.st = chainState{size: size, last: prev, root: root, frontier: frontier}
	s.stats.commits.Add(1)
	s.stats.appends.Add(int64(len(batch)))
	return evs, nil
}

func putHead(ctx context.Context, tx *sql.Tx, cp Checkpoint) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO head(id, note) VALUES (1, ?)
		ON CONFLICT(id) DO UPDATE SET note = excluded.note`, cp.Note); err != nil {
		return unavailable("write head", err)
	}
	return nil
}

// checkpoint appends a signed checkpoint of the current tree (also when
// nothing changed) and makes it the head. Only the writer goroutine, Open and
// Close (after the writer exits) call it.
func (s *Store) checkpoint(ctx context.Context) (err error) {
	if s.dirty {
		if err := s.loadState(ctx); err != nil {
			return unavailable("reload state", err)
		}
	}
	defer func() {
		if err != nil {
			s.dirty = true
			s.stats.failures.Add(1)
			err = fmt.Errorf("audit checkpoint: %w", err)
		}
	}()
	now := s.now()
	cp, err := signCheckpoint(s.key.Load(), s.origin, s.st.size, s.st.root, now)
	if err != nil {
		return unavailable("sign", err)
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return unavailable("begin", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO checkpoints(size, time_ns, note) VALUES (?,?,?)`,
		cp.Size, now.UnixNano(), cp.Note); err != nil {
		return unavailable("insert checkpoint", err)
	}
	if err := putHead(ctx, tx, cp); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return unavailable("commit", err)
	}
	s.stats.checkpoints.Add(1)
	if f := s.cfg.OnCheckpoint; f != nil {
		if err := f(cp); err != nil {
			s.log.Error("audit checkpoint not published", "size", cp.Size, "err", err)
		}
	}
	return nil
}

// frontierIndexes returns the stored hash indexes of the complete subtrees
// that make up a tree of size n: exactly what appending the next leaf and
// computing the root read.
func frontierIndexes(n int64) []int64 {
	var idx []int64
	for l := 0; n>>l > 0; l++ {
		if (n>>l)&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(l, (n>>l)-1))
		}
	}
	return idx
}

// rowQuerier is satisfied by *sql.DB and *sql.Tx.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// hashReader reads stored tree hashes, first from in-memory maps, then from
// the tree table, where stored hash index x lives in the row of the leaf
// that completed its subtree.
type hashReader struct {
	ctx context.Context
	q   rowQuerier
	mem []map[int64]tlog.Hash
}

func (r *hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	lastLeaf, blob := int64(-1), []byte(nil)
next:
	for i, x := range indexes {
		for _, m := range r.mem {
			if h, ok := m[x]; ok {
				out[i] = h
				continue next
			}
		}
		level, k := tlog.SplitStoredHashIndex(x)
		leaf := (k+1)<<level - 1
		if leaf != lastLeaf {
			blob = nil
			if err := r.q.QueryRowContext(r.ctx, `SELECT hashes FROM tree WHERE leaf = ?`, leaf).Scan(&blob); err != nil {
				return nil, fmt.Errorf("read tree leaf %d: %w", leaf, err)
			}
			lastLeaf = leaf
		}
		off := x - tlog.StoredHashIndex(0, leaf)
		if off < 0 || (off+1)*tlog.HashSize > int64(len(blob)) {
			return nil, fmt.Errorf("%w: tree leaf %d lacks stored hash %d", ErrTampered, leaf, x)
		}
		copy(out[i][:], blob[off*tlog.HashSize:])
	}
	return out, nil
}

var (
	eventCols = []string{"seq", "id", "time_ns", "action", "outcome", "actor_subject", "actor_email",
		"request_id", "target_request_id", "grant_id", "service", "env", "record", "hash"}
	treeCols = []string{"leaf", "hashes"}
)

// maxRowsPerInsert bounds a multi-row INSERT (14 columns x 256 rows stays
// far below SQLite's 32766 parameters).
const maxRowsPerInsert = 256

// insertRows inserts len(args)/len(cols) rows with as few multi-row INSERT
// statements as possible (sizes are powers of two, prepared once and cached).
func (s *Store) insertRows(ctx context.Context, tx *sql.Tx, table string, cols []string, args []any) error {
	w := len(cols)
	for n := len(args) / w; n > 0; {
		k := maxRowsPerInsert
		for k > n {
			k >>= 1
		}
		stmt, err := s.insertStmt(ctx, table, cols, k)
		if err != nil {
			return err
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args[:k*w]...); err != nil {
			return err
		}
		args, n = args[k*w:], n-k
	}
	return nil
}

func (s *Store) insertStmt(ctx context.Context, table string, cols []string, rows int) (*sql.Stmt, error) {
	if st, ok := s.stmts[fmt.Sprintf("%s/%d", table, rows)]; ok {
		return st, nil
	}
	return nil, fmt.Errorf("no prepared insert for %d rows of %s", rows, table)
}

// prepareInserts prepares the multi-row INSERTs on wdb. It runs at Open,
// outside any transaction: wdb has one connection, which a transaction holds.
func (s *Store) prepareInserts(ctx context.Context) error {
	for _, t := range []struct {
		table string
		cols  []string
	}{{"events", eventCols}, {"tree", treeCols}} {
		row := "(" + strings.Repeat("?,", len(t.cols)-1) + "?)"
		for rows := 1; rows <= maxRowsPerInsert; rows <<= 1 {
			q := "INSERT INTO " + t.table + "(" + strings.Join(t.cols, ",") + ") VALUES " +
				strings.Repeat(row+",", rows-1) + row
			st, err := s.wdb.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare insert: %w", err)
			}
			s.stmts[fmt.Sprintf("%s/%d", t.table, rows)] = st
		}
	}
	return nil
}

// answerRepeats answers the requests whose caller-assigned id the trail (or
// an earlier request of the batch) already holds, and returns the others.
// Only the writer goroutine calls it, so nothing commits in between.
func (s *Store) answerRepeats(batch []*appendReq) []*appendReq {
	var seen map[string]bool
	out := batch[:0]
	for _, r := range batch {
		if !r.given {
			out = append(out, r)
			continue
		}
		if seen[r.ev.ID] {
			// Two requests with one id in a batch: let the second find the
			// first committed (it retries, as any repeat does).
			r.done <- appendRes{err: fmt.Errorf("audit append: %w: event id %s is being appended", ErrUnavailable, r.ev.ID)}
			continue
		}
		var seq int64
		var rec, hash []byte
		err := s.wdb.QueryRowContext(context.Background(), `SELECT seq, record, hash FROM events WHERE id = ?`, r.ev.ID).Scan(&seq, &rec, &hash)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if seen == nil {
				seen = map[string]bool{}
			}
			seen[r.ev.ID] = true
			out = append(out, r)
		case err != nil:
			r.done <- appendRes{err: fmt.Errorf("audit append: %w", unavailable("look up id", err))}
		default:
			prefix := BuildRecord(seq, [32]byte{}, []byte("{}"))
			// The stored record is {"seq":N,"prev_hash":"…",<tail[1:]>.
			if len(rec) < len(prefix)-1 || !bytes.Equal(rec[len(prefix)-1:], r.tail[1:]) {
				r.done <- appendRes{err: fmt.Errorf("audit append: %w: event id %s exists with other content", ErrInvalid, r.ev.ID)}
				continue
			}
			ev, err := DecodeRecord(rec, hash)
			if err != nil {
				r.done <- appendRes{err: fmt.Errorf("audit append: %w: seq %d: %v", ErrTampered, seq, err)}
				continue
			}
			r.done <- appendRes{ev: ev}
		}
	}
	return out
}

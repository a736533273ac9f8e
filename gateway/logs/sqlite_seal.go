package logs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/loggate/loggate/gateway/logs/seal"
)

// UseKeys makes the backlog seal new entries with ring's newest key and
// open old ones with any of its keys (nil: store in clear). It fails,
// naming the key, when stored entries were sealed with a key ring lacks,
// so a start with the wrong key file stops instead of hiding the backlog.
// Call it once, before the backlog is used.
func (b *SQLiteBacklog) UseKeys(ctx context.Context, ring *seal.Ring) error {
	ids, clear, err := b.storedKeys(ctx)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if ring == nil {
			return fmt.Errorf("log backlog holds entries sealed with key %s, and no key file is given: %w",
				id, &seal.UnknownKeyError{ID: id})
		}
		if !ring.Has(id) {
			return fmt.Errorf("log backlog holds entries sealed with key %s; the key file has %s: %w",
				id, strings.Join(ring.IDs(), ", "), &seal.UnknownKeyError{ID: id})
		}
	}
	if ring != nil && clear > 0 {
		b.log.Warn("log backlog holds entries in clear from before encryption; `loggate keys rotate-backlog` seals them",
			"entries", clear)
	}
	b.ring = ring
	return nil
}

// storedKeys returns the ids of the keys that sealed stored entries and
// how many entries are in clear.
func (b *SQLiteBacklog) storedKeys(ctx context.Context) (ids []string, clear int64, err error) {
	rows, err := b.db.QueryContext(ctx, `SELECT CASE WHEN substr(entry, 1, 1) = x'01' THEN substr(entry, 1, ?) ELSE x'' END AS k,
		COUNT(*) FROM log_entries GROUP BY k`, seal.HeaderPrefixLen)
	if err != nil {
		return nil, 0, fmt.Errorf("log backlog keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var prefix []byte
		var n int64
		if err := rows.Scan(&prefix, &n); err != nil {
			return nil, 0, fmt.Errorf("log backlog keys: %w", err)
		}
		if len(prefix) == 0 {
			clear += n
			continue
		}
		id, ok := seal.KeyID(prefix)
		if !ok {
			return nil, 0, fmt.Errorf("log backlog keys: %d entries with a malformed seal header", n)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, clear, rows.Err()
}

// encode returns e as stored: its tail JSON, sealed when a ring is set.
// scratch is reused for the JSON.
func (b *SQLiteBacklog) encode(dst, scratch []byte, e *Entry) (out, scratchOut []byte) {
	if b.ring == nil {
		return appendEntry(dst, e), scratch
	}
	scratch = appendEntry(scratch[:0], e)
	return b.ring.Seal(dst, scratch, e.Service, e.Env, e.Seq), scratch
}

// decode returns the entry stored as raw at seq of s. An entry that does
// not open is logged (never its content) and skipped: ok is false.
func (b *SQLiteBacklog) decode(s Stream, seq int64, raw []byte) (e Entry, ok bool, err error) {
	if seal.IsSealed(raw) {
		if b.ring == nil {
			b.unopenable(s, seq, raw, errors.New("sealed, and no key file is given"))
			return Entry{}, false, nil
		}
		plain, err := b.ring.Open(nil, raw, s.Service, s.Env, seq)
		if err != nil {
			b.unopenable(s, seq, raw, err)
			return Entry{}, false, nil
		}
		raw = plain
	}
	if err := decodeEntry(raw, &e); err != nil {
		return Entry{}, false, fmt.Errorf("decode entry %d: %w", seq, err)
	}
	if e.Seq != seq || e.Service != s.Service || e.Env != s.Env {
		// A clear entry copied elsewhere: its own fields say so.
		b.unopenable(s, seq, nil, errors.New("entry's own stream or seq differs from its position"))
		return Entry{}, false, nil
	}
	return e, true, nil
}

func (b *SQLiteBacklog) unopenable(s Stream, seq int64, raw []byte, err error) {
	n := b.unopened.Add(1)
	id, _ := seal.KeyID(raw)
	b.log.Error("log backlog entry withheld: it does not open for its stream and position",
		"stream", s.String(), "seq", seq, "key_id", id, "err", err, "withheld_since_start", n)
}

// Withheld returns how many entries failed to open since start.
func (b *SQLiteBacklog) Withheld() int64 { return b.unopened.Load() }

// ResealReport is what Reseal did.
type ResealReport struct {
	// Resealed entries were in clear or under an older key and are now
	// sealed with the newest key.
	Resealed int
	// Current entries were already sealed with the newest key.
	Current int
	// Withheld entries did not open and were left as they are.
	Withheld int
}

// Reseal seals every stored entry with the newest key of the ring given to
// UseKeys, in batches, then rewrites the file so no old page (clear or
// under an old key) stays in it or its WAL. It may run while a gateway
// writes to the same file: an entry that changes meanwhile is left to the
// writer, which seals with the newest key anyway.
func (b *SQLiteBacklog) Reseal(ctx context.Context) (ResealReport, error) {
	var rep ResealReport
	if b.ring == nil {
		return rep, errors.New("reseal log backlog: no key file")
	}
	newest := b.ring.NewestID()
	var last resealRow
	for {
		batch, err := b.resealPage(ctx, last)
		if err != nil {
			return rep, err
		}
		if len(batch) == 0 {
			break
		}
		last = batch[len(batch)-1]
		if err := b.resealBatch(ctx, newest, batch, &rep); err != nil {
			return rep, err
		}
	}
	return rep, b.compact(ctx)
}

type resealRow struct {
	s   Stream
	seq int64
	raw []byte
}

// resealPage returns the next 500 stored entries after last, in key order.
func (b *SQLiteBacklog) resealPage(ctx context.Context, last resealRow) ([]resealRow, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT service, env, seq, entry FROM log_entries
		WHERE (service, env, seq) > (?, ?, ?) ORDER BY service, env, seq LIMIT 500`,
		last.s.Service, last.s.Env, last.seq)
	if err != nil {
		return nil, fmt.Errorf("reseal log backlog: %w", err)
	}
	defer rows.Close()
	var batch []resealRow
	for rows.Next() {
		var r resealRow
		if err := rows.Scan(&r.s.Service, &r.s.Env, &r.seq, &r.raw); err != nil {
			return nil, fmt.Errorf("reseal log backlog: %w", err)
		}
		batch = append(batch, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reseal log backlog: %w", err)
	}
	return batch, nil
}

// resealBatch re-seals one page in one transaction; a row changed since it
// was read (compare on the old bytes) is left alone.
func (b *SQLiteBacklog) resealBatch(ctx context.Context, newest string, batch []resealRow, rep *ResealReport) (err error) {
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("reseal log backlog: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var buf, scratch []byte
	for _, r := range batch {
		if id, ok := seal.KeyID(r.raw); ok && id == newest {
			rep.Current++
			continue
		}
		e, ok, err := b.decode(r.s, r.seq, r.raw)
		if err != nil || !ok {
			rep.Withheld++
			continue
		}
		buf, scratch = b.encode(buf[:0], scratch, &e)
		if _, err := tx.ExecContext(ctx, `UPDATE log_entries SET entry = ? WHERE service = ? AND env = ? AND seq = ? AND entry = ?`,
			buf, r.s.Service, r.s.Env, r.seq, r.raw); err != nil {
			return fmt.Errorf("reseal log backlog: %s seq %d: %w", r.s, r.seq, err)
		}
		rep.Resealed++
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("reseal log backlog: commit: %w", err)
	}
	return nil
}

// compact rewrites the database file and empties the WAL.
func (b *SQLiteBacklog) compact(ctx context.Context) error {
	if _, err := b.db.ExecContext(ctx, `VACUUM`); err != nil {
		return fmt.Errorf("reseal log backlog: vacuum: %w", err)
	}
	if _, err := b.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return fmt.Errorf("reseal log backlog: checkpoint: %w", err)
	}
	return nil
}

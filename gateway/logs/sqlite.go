package logs

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/loggate/loggate/gateway/logs/seal"
)

// SQLiteBacklog is a Backlog in one SQLite file (WAL mode). Entries are
// stored as their tail JSON with the columns needed to range and trim.
type SQLiteBacklog struct {
	db  *sql.DB
	log *slog.Logger
	// ring seals entries at rest; nil stores them in clear. Set by UseKeys
	// before the backlog is used (sqlite_seal.go).
	ring *seal.Ring
	// unopened counts entries withheld since start because they did not
	// open (moved, tampered with, or sealed with a key no longer given).
	unopened atomic.Int64
	// Now is the clock for age trimming. If nil, time.Now. Set it before
	// the backlog is used.
	Now func() time.Time
}

var _ Backlog = (*SQLiteBacklog)(nil)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS log_entries (
	service     TEXT    NOT NULL,
	env         TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	time_ns     INTEGER NOT NULL,
	observed_ns INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	entry       BLOB    NOT NULL,
	PRIMARY KEY (service, env, seq)
) WITHOUT ROWID;
`

// OpenSQLiteBacklog opens (creating if needed) the backlog at path.
func OpenSQLiteBacklog(ctx context.Context, path string, logger *slog.Logger) (*SQLiteBacklog, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open log backlog %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, sqliteSchema+sqliteHoldSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open log backlog %s: create schema: %w", path, err)
	}
	return &SQLiteBacklog{db: db, log: logger}, nil
}

// Close closes the database.
func (b *SQLiteBacklog) Close() error { return b.db.Close() }

func (b *SQLiteBacklog) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// Append stores the entries in one transaction.
func (b *SQLiteBacklog) Append(ctx context.Context, entries []Entry) (err error) {
	if len(entries) == 0 {
		return nil
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append to log backlog: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	stmt, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO log_entries
		(service, env, seq, time_ns, observed_ns, size, entry) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append to log backlog: %w", err)
	}
	defer stmt.Close()
	var buf, scratch []byte
	for i := range entries {
		e := &entries[i]
		buf, scratch = b.encode(buf[:0], scratch, e)
		if _, err := stmt.ExecContext(ctx, e.Service, e.Env, e.Seq, unixNano(e.Time),
			unixNano(e.Observed), entrySize(e), buf); err != nil {
			return fmt.Errorf("append to log backlog: seq %d: %w", e.Seq, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append to log backlog: commit: %w", err)
	}
	return nil
}

// Range returns entries of s with seq > afterSeq (and Time >= since unless
// zero), in seq order, at most limit (limit <= 0: all).
func (b *SQLiteBacklog) Range(ctx context.Context, s Stream, afterSeq int64, since time.Time, limit int) ([]Entry, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	query := `SELECT seq, entry FROM log_entries WHERE service = ? AND env = ? AND seq > ?`
	args := []any{s.Service, s.Env, afterSeq}
	if !since.IsZero() {
		query += ` AND time_ns >= ?`
		args = append(args, since.UnixNano())
	}
	query += ` ORDER BY seq LIMIT ?`
	args = append(args, limit)
	rows, err := b.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("range log backlog %s: %w", s, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var seq int64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, fmt.Errorf("range log backlog %s: %w", s, err)
		}
		e, ok, err := b.decode(s, seq, raw)
		if err != nil {
			return nil, fmt.Errorf("range log backlog %s: %w", s, err)
		}
		if ok {
			out = append(out, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("range log backlog %s: %w", s, err)
	}
	return out, nil
}

// LastSeq returns the highest stored seq of s, or 0.
func (b *SQLiteBacklog) LastSeq(ctx context.Context, s Stream) (int64, error) {
	var seq sql.NullInt64
	err := b.db.QueryRowContext(ctx,
		`SELECT MAX(seq) FROM log_entries WHERE service = ? AND env = ?`, s.Service, s.Env).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("last seq of log backlog %s: %w", s, err)
	}
	return seq.Int64, nil
}

// Streams lists the streams that have stored entries.
func (b *SQLiteBacklog) Streams(ctx context.Context) ([]Stream, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT DISTINCT service, env FROM log_entries ORDER BY service, env`)
	if err != nil {
		return nil, fmt.Errorf("list log backlog streams: %w", err)
	}
	defer rows.Close()
	var out []Stream
	for rows.Next() {
		var s Stream
		if err := rows.Scan(&s.Service, &s.Env); err != nil {
			return nil, fmt.Errorf("list log backlog streams: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// Trim deletes the entries of s beyond r (defaults for zero fields): the
// oldest beyond MaxEntries, those observed before now-MaxAge, and the oldest
// while the stored size exceeds MaxBytes.
func (b *SQLiteBacklog) Trim(ctx context.Context, s Stream, r Retention) error {
	r = r.withDefaults()
	// Held entries stay and do not count against the limits: every
	// statement leaves them out, in what it deletes and in what it counts.
	nh := notHeld("log_entries")
	stmts := []struct {
		query string
		args  []any
	}{
		{`DELETE FROM log_entries WHERE service = ?1 AND env = ?2` + nh + ` AND seq <= (
			SELECT e.seq FROM log_entries e WHERE e.service = ?1 AND e.env = ?2` + notHeld("e") + `
			ORDER BY e.seq DESC LIMIT 1 OFFSET ?3)`,
			[]any{s.Service, s.Env, r.MaxEntries}},
		{`DELETE FROM log_entries WHERE service = ?1 AND env = ?2` + nh + ` AND observed_ns < ?3`,
			[]any{s.Service, s.Env, b.now().Add(-r.MaxAge).UnixNano()}},
		{`DELETE FROM log_entries WHERE service = ?1 AND env = ?2` + nh + ` AND seq <= (
			SELECT seq FROM (
				SELECT e.seq, SUM(e.size) OVER (ORDER BY e.seq DESC) AS total
				FROM log_entries e WHERE e.service = ?1 AND e.env = ?2` + notHeld("e") + `)
			WHERE total > ?3 ORDER BY seq DESC LIMIT 1)`,
			[]any{s.Service, s.Env, r.MaxBytes}},
	}
	for _, st := range stmts {
		if _, err := b.db.ExecContext(ctx, st.query, st.args...); err != nil {
			return fmt.Errorf("trim log backlog %s: %w", s, err)
		}
	}
	return nil
}

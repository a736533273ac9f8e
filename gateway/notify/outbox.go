package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// outboxSchema is the outbox table: one row per (message, target). A
// delivered row is deleted; an abandoned one is kept with its last error.
const outboxSchema = `CREATE TABLE IF NOT EXISTS outbox (
	id         TEXT PRIMARY KEY,
	msg_id     TEXT NOT NULL,
	target     TEXT NOT NULL,
	kind       TEXT NOT NULL,
	body       BLOB NOT NULL,
	urgent     INTEGER NOT NULL DEFAULT 0,
	state      TEXT NOT NULL DEFAULT 'pending',
	attempts   INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	next_at    INTEGER NOT NULL,
	last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, urgent DESC, next_at);`

// row is one delivery of one message to one target.
type row struct {
	ID       string // MsgID + "." + Target
	MsgID    string // the webhook-id: the same on every attempt
	Target   string
	Kind     string
	Body     []byte
	Urgent   bool
	Attempts int
	Created  time.Time
	NextAt   time.Time
}

// outbox is where messages wait for delivery: a SQLite file per replica
// (sqliteOutbox) or, shared by replicas, a Redis Stream read through a
// consumer group (redisOutbox). Row ids are unique within one outbox.
type outbox interface {
	// add queues rows atomically: all or none.
	add(ctx context.Context, rows []row) error
	// due returns up to limit rows due at now this replica may attempt,
	// urgent first, and the earliest later due time (zero: none known).
	due(ctx context.Context, now time.Time, limit int) ([]row, time.Time, error)
	// done removes a delivered row.
	done(ctx context.Context, r row) error
	// fail records a failed attempt: retry at next, or keep as abandoned.
	fail(ctx context.Context, r row, next time.Time, abandon bool, msg string) error
	// pending counts rows still to be delivered (not abandoned).
	pending(ctx context.Context) (int, error)
	// countDue counts rows this replica would attempt at now.
	countDue(ctx context.Context, now time.Time) (int, error)
	// maxWait bounds the delivery loop's sleep (zero: no bound).
	maxWait() time.Duration
	close() error
}

// sqliteOutbox is the outbox of one replica, in its own SQLite file.
type sqliteOutbox struct{ db *sql.DB }

func (o *sqliteOutbox) add(ctx context.Context, rows []row) error { return insertRows(ctx, o.db, rows) }

func (o *sqliteOutbox) due(ctx context.Context, now time.Time, limit int) ([]row, time.Time, error) {
	rows, err := dueRows(ctx, o.db, now, limit)
	if err != nil {
		return nil, time.Time{}, err
	}
	next, err := nextDue(ctx, o.db, now)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read outbox: %w", err)
	}
	return rows, next, nil
}

func (o *sqliteOutbox) done(ctx context.Context, r row) error { return deleteRow(ctx, o.db, r.ID) }

func (o *sqliteOutbox) fail(ctx context.Context, r row, next time.Time, abandon bool, msg string) error {
	return failRow(ctx, o.db, r.ID, next, abandon, msg)
}

func (o *sqliteOutbox) pending(ctx context.Context) (int, error) {
	return countRows(ctx, o.db, "state = 'pending'")
}

func (o *sqliteOutbox) countDue(ctx context.Context, now time.Time) (int, error) {
	return countRows(ctx, o.db, "state = 'pending' AND next_at <= ?", now.UnixNano())
}

func (o *sqliteOutbox) maxWait() time.Duration { return 0 }
func (o *sqliteOutbox) close() error           { return o.db.Close() }

func openOutbox(ctx context.Context, path string) (*sql.DB, error) {
	dsn := "file:" + path + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open notification outbox: %w", err)
	}
	db.SetMaxOpenConns(2)
	if _, err := db.ExecContext(ctx, outboxSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open notification outbox %s: %w", path, err)
	}
	return db, nil
}

func insertRows(ctx context.Context, db *sql.DB, rows []row) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer tx.Rollback()
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO outbox(id, msg_id, target, kind, body, urgent, created_at, next_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.MsgID, r.Target, r.Kind, r.Body, r.Urgent,
			r.Created.UnixNano(), r.NextAt.UnixNano()); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// dueRows returns up to limit pending rows due at now, urgent first, then
// oldest due first.
func dueRows(ctx context.Context, db *sql.DB, now time.Time, limit int) ([]row, error) {
	rs, err := db.QueryContext(ctx, `SELECT id, msg_id, target, kind, body, urgent, attempts, created_at, next_at
		FROM outbox WHERE state = 'pending' AND next_at <= ? ORDER BY urgent DESC, next_at LIMIT ?`, now.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		var created, next int64
		if err := rs.Scan(&r.ID, &r.MsgID, &r.Target, &r.Kind, &r.Body, &r.Urgent, &r.Attempts, &created, &next); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		r.Created, r.NextAt = time.Unix(0, created), time.Unix(0, next)
		out = append(out, r)
	}
	return out, rs.Err()
}

// nextDue is the earliest next_at of a pending row strictly after now, or
// the zero time when there is none.
func nextDue(ctx context.Context, db *sql.DB, now time.Time) (time.Time, error) {
	var next sql.NullInt64
	err := db.QueryRowContext(ctx, `SELECT MIN(next_at) FROM outbox WHERE state = 'pending' AND next_at > ?`,
		now.UnixNano()).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return time.Unix(0, next.Int64), nil
}

func deleteRow(ctx context.Context, db *sql.DB, id string) error {
	_, err := db.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, id)
	return err
}

// failRow records a failed attempt: the row is retried at next, or, when
// abandon is set, kept as abandoned.
func failRow(ctx context.Context, db *sql.DB, id string, next time.Time, abandon bool, msg string) error {
	state := "pending"
	if abandon {
		state = "abandoned"
	}
	_, err := db.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_at = ?, state = ?, last_error = ?
		WHERE id = ?`, next.UnixNano(), state, msg, id)
	return err
}

func countRows(ctx context.Context, db *sql.DB, where string, args ...any) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox WHERE `+where, args...).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}

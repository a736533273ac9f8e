package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// migrations are applied in order; the schema version is their count.
// Never edit a released migration: append a new one.
var migrations = []string{
	`CREATE TABLE records (
		kind    TEXT NOT NULL,
		id      TEXT NOT NULL,
		state   TEXT NOT NULL DEFAULT '',
		owner   TEXT NOT NULL DEFAULT '',
		service TEXT NOT NULL DEFAULT '',
		env     TEXT NOT NULL DEFAULT '',
		lookup  TEXT NOT NULL DEFAULT '',
		created INTEGER NOT NULL,
		doc     BLOB NOT NULL,
		PRIMARY KEY (kind, id)
	);
	CREATE INDEX records_state ON records(kind, state, created DESC, id DESC);
	CREATE INDEX records_owner ON records(kind, owner, created DESC, id DESC);
	CREATE INDEX records_lookup ON records(kind, lookup) WHERE lookup <> '';`,
}

// SQLite is the embedded single-machine backend.
type SQLite struct {
	db *sql.DB
}

var _ Backend = (*SQLite)(nil)

// OpenSQLite opens (creating and migrating) the database file at path.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	dsn := "file:" + path + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := &SQLite{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	var v int
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version(version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate store: %w", err)
		}
	case err != nil:
		return fmt.Errorf("migrate store: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("migrate store: database schema version %d is newer than this binary (%d)", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate store to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)); err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	return tx.Commit()
}

// SchemaVersion reports the schema version of the open database.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	return v, err
}

type sqliteTx struct{ tx *sql.Tx }

func (t sqliteTx) Get(ctx context.Context, kind, id string) (Record, error) {
	return scanOne(t.tx.QueryRowContext(ctx, `SELECT kind,id,state,owner,service,env,lookup,created,doc FROM records WHERE kind=? AND id=?`, kind, id))
}

func (t sqliteTx) Put(ctx context.Context, r Record) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO records(kind,id,state,owner,service,env,lookup,created,doc) VALUES (?,?,?,?,?,?,?,?,?)
		ON CONFLICT(kind,id) DO UPDATE SET state=excluded.state, owner=excluded.owner, service=excluded.service,
		env=excluded.env, lookup=excluded.lookup, doc=excluded.doc`,
		r.Kind, r.ID, r.State, r.Owner, r.Service, r.Env, r.Lookup, r.Created.UnixNano(), r.Doc)
	if err != nil {
		return fmt.Errorf("put %s %s: %w", r.Kind, r.ID, err)
	}
	return nil
}

// Update implements Backend.
func (s *SQLite) Update(ctx context.Context, fn func(Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %v", ErrUnavailable, err)
	}
	defer tx.Rollback()
	if err := fn(sqliteTx{tx}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %v", ErrUnavailable, err)
	}
	return nil
}

// Get implements Backend.
func (s *SQLite) Get(ctx context.Context, kind, id string) (Record, error) {
	return scanOne(s.db.QueryRowContext(ctx, `SELECT kind,id,state,owner,service,env,lookup,created,doc FROM records WHERE kind=? AND id=?`, kind, id))
}

func scanOne(row *sql.Row) (Record, error) {
	var r Record
	var created int64
	err := row.Scan(&r.Kind, &r.ID, &r.State, &r.Owner, &r.Service, &r.Env, &r.Lookup, &created, &r.Doc)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	r.Created = time.Unix(0, created)
	return r, nil
}

// List implements Backend.
func (s *SQLite) List(ctx context.Context, q Query) ([]Record, string, error) {
	limit := clampLimit(q.Limit)
	where := []string{"kind = ?"}
	args := []any{q.Kind}
	for _, f := range []struct{ col, val string }{{"state", q.State}, {"owner", q.Owner}, {"service", q.Service}, {"env", q.Env}, {"lookup", q.Lookup}} {
		if f.val != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.val)
		}
	}
	if q.Cursor != "" {
		c, id, err := DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "(created < ? OR (created = ? AND id < ?))")
		args = append(args, c.UnixNano(), c.UnixNano(), id)
	}
	args = append(args, limit+1)
	rows, err := s.db.QueryContext(ctx, `SELECT kind,id,state,owner,service,env,lookup,created,doc FROM records WHERE `+
		strings.Join(where, " AND ")+` ORDER BY created DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, "", fmt.Errorf("%w: list %s: %v", ErrUnavailable, q.Kind, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var created int64
		if err := rows.Scan(&r.Kind, &r.ID, &r.State, &r.Owner, &r.Service, &r.Env, &r.Lookup, &created, &r.Doc); err != nil {
			return nil, "", fmt.Errorf("%w: list %s: %v", ErrUnavailable, q.Kind, err)
		}
		r.Created = time.Unix(0, created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("%w: list %s: %v", ErrUnavailable, q.Kind, err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = EncodeCursor(last.Created, last.ID)
	}
	return out, next, nil
}

// Ping implements Backend.
func (s *SQLite) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close implements Backend.
func (s *SQLite) Close() error { return s.db.Close() }

func clampLimit(n int) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return n
}

// ErrBadCursor reports a cursor this store did not issue.
var ErrBadCursor = errors.New("malformed cursor")

// EncodeCursor makes an opaque page cursor.
func EncodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + ":" + id))
}

// DecodeCursor reverses EncodeCursor.
func DecodeCursor(c string) (time.Time, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrBadCursor
	}
	ts, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", ErrBadCursor
	}
	return time.Unix(0, n), id, nil
}

package alert

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound means no alert has the id.
var ErrNotFound = errors.New("alert: not found")

const storeSchema = `CREATE TABLE IF NOT EXISTS alerts (
	id         TEXT PRIMARY KEY,
	rule       TEXT NOT NULL,
	state      TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	body       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_recent ON alerts(updated_at DESC);
CREATE TABLE IF NOT EXISTS am_outbox (
	alert_id TEXT NOT NULL,
	target   TEXT NOT NULL,
	body     BLOB NOT NULL,
	version  INTEGER NOT NULL DEFAULT 1,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_at  INTEGER NOT NULL,
	PRIMARY KEY (alert_id, target)
);`

// Store keeps alerts (and the Alertmanager outbox) in one SQLite file.
type Store struct{ db *sql.DB }

// OpenStore opens (creating) the SQLite file at path.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open alert store: %w", err)
	}
	db.SetMaxOpenConns(2)
	if _, err := db.ExecContext(ctx, storeSchema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open alert store %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Save writes the alert's current state.
func (s *Store) Save(ctx context.Context, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO alerts(id, rule, state, updated_at, body) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, body = excluded.body`,
		a.ID, a.Rule, a.State, a.UpdatedAt.UnixNano(), b)
	if err != nil {
		return fmt.Errorf("save alert: %w", err)
	}
	return nil
}

// Delete forgets an alert (a pending one that never fired).
func (s *Store) Delete(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM alerts WHERE id = ?`, id)
	return err
}

// Get returns one alert.
func (s *Store) Get(ctx context.Context, id string) (Alert, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT body FROM alerts WHERE id = ?`, id).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return Alert{}, ErrNotFound
	}
	if err != nil {
		return Alert{}, fmt.Errorf("read alert: %w", err)
	}
	var a Alert
	return a, json.Unmarshal(b, &a)
}

// List returns up to limit alerts, most recently changed first; state, if
// set, keeps only alerts in that state.
func (s *Store) List(ctx context.Context, state string, limit int) ([]Alert, error) {
	q := `SELECT body FROM alerts`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY updated_at DESC LIMIT ?`
	args = append(args, limit)
	rs, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	defer rs.Close()
	out := []Alert{}
	for rs.Next() {
		var b []byte
		if err := rs.Scan(&b); err != nil {
			return nil, err
		}
		var a Alert
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rs.Err()
}

// Active returns the pending and firing alerts the store holds (after a
// restart: what the last run left unresolved).
func (s *Store) Active(ctx context.Context) ([]Alert, error) {
	var out []Alert
	for _, st := range []string{StatePending, StateFiring} {
		as, err := s.List(ctx, st, 10000)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	return out, nil
}

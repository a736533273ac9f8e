package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// amOutbox holds Alertmanager deliveries: one row per alert and target
// with the latest state (a newer state replaces an undelivered older one;
// version tells them apart), its attempts and when it is next due.
type amOutbox interface {
	// put queues body as alertID's latest state for target; false when the
	// outbox holds max rows and this one would be new (dropped).
	put(ctx context.Context, alertID, target string, body []byte, now time.Time, max int) (bool, error)
	// due returns (claims, where replicas share the outbox) up to limit
	// rows for target due at now.
	due(ctx context.Context, target string, now time.Time, limit int) ([]outRow, error)
	// done forgets a row delivered (or refused) unless a newer state
	// replaced it meanwhile.
	done(ctx context.Context, target string, r outRow, now time.Time) error
	// retry makes a row due again at next, one attempt more.
	retry(ctx context.Context, target string, r outRow, next, now time.Time) error
	pending(ctx context.Context) (int, error)
}

type outRow struct {
	alertID string
	version int64
	attempt int
	body    json.RawMessage
}

// sqliteOutbox is the outbox of one gateway, in the alert store's file.
type sqliteOutbox struct{ st *Store }

func (o sqliteOutbox) pending(ctx context.Context) (int, error) {
	var n int
	err := o.st.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM am_outbox`).Scan(&n)
	return n, err
}

func (o sqliteOutbox) put(ctx context.Context, alertID, t string, b []byte, now time.Time, max int) (bool, error) {
	n, err := o.pending(ctx)
	if err != nil {
		return false, err
	}
	if n >= max {
		// Full: only replacing a row already queued is allowed.
		res, err := o.st.db.ExecContext(ctx, `UPDATE am_outbox SET body = ?, version = version + 1, attempts = 0, next_at = ?
			WHERE alert_id = ? AND target = ?`, b, now.UnixNano(), alertID, t)
		if err != nil {
			return false, err
		}
		k, _ := res.RowsAffected()
		return k > 0, nil
	}
	_, err = o.st.db.ExecContext(ctx, `INSERT INTO am_outbox(alert_id, target, body, next_at) VALUES (?, ?, ?, ?)
		ON CONFLICT(alert_id, target) DO UPDATE SET body = excluded.body, version = version + 1, attempts = 0, next_at = excluded.next_at`,
		alertID, t, b, now.UnixNano())
	return err == nil, err
}

func (o sqliteOutbox) due(ctx context.Context, t string, now time.Time, limit int) ([]outRow, error) {
	rs, err := o.st.db.QueryContext(ctx, `SELECT alert_id, version, attempts, body FROM am_outbox
		WHERE target = ? AND next_at <= ? ORDER BY next_at LIMIT ?`, t, now.UnixNano(), limit)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var rows []outRow
	for rs.Next() {
		var r outRow
		var b []byte
		if err := rs.Scan(&r.alertID, &r.version, &r.attempt, &b); err != nil {
			return nil, fmt.Errorf("read alert outbox: %w", err)
		}
		r.body = b
		rows = append(rows, r)
	}
	return rows, rs.Err()
}

func (o sqliteOutbox) done(ctx context.Context, t string, r outRow, _ time.Time) error {
	_, err := o.st.db.ExecContext(ctx, `DELETE FROM am_outbox WHERE alert_id = ? AND target = ? AND version = ?`, r.alertID, t, r.version)
	return err
}

func (o sqliteOutbox) retry(ctx context.Context, t string, r outRow, next, _ time.Time) error {
	_, err := o.st.db.ExecContext(ctx, `UPDATE am_outbox SET attempts = attempts + 1, next_at = ? WHERE alert_id = ? AND target = ? AND version = ?`,
		next.UnixNano(), r.alertID, t, r.version)
	return err
}

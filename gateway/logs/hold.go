package logs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Hold keeps the entries of one stream observed in [From, To] past the
// retention: a legal hold on a grant holds the window its views could
// have shown (from the lookback before it was issued to its end).
type Hold struct {
	ID       string // unique; placing a hold with an existing ID replaces it
	Stream   Stream
	From, To time.Time
	Reason   string
}

// Holder is implemented by a Backlog that can keep held entries past its
// retention (the SQLite backlog).
type Holder interface {
	PlaceHold(ctx context.Context, h Hold) error
	ReleaseHold(ctx context.Context, id string) error
}

// ErrHoldUnsupported is returned by Hub.PlaceHold when the backlog cannot
// hold entries (memory only, or the shared Redis feed).
var ErrHoldUnsupported = errors.New("this log backlog cannot hold entries past its retention")

// CanHold says whether the hub's backlog can hold entries.
func (h *Hub) CanHold() bool {
	_, ok := h.cfg.Backlog.(Holder)
	return ok
}

// PlaceHold keeps h's entries past the retention of the hub's backlog.
func (h *Hub) PlaceHold(ctx context.Context, hold Hold) error {
	hd, ok := h.cfg.Backlog.(Holder)
	if !ok {
		return ErrHoldUnsupported
	}
	if hold.ID == "" || hold.To.Before(hold.From) {
		return fmt.Errorf("place hold: empty id or a window that ends before it starts")
	}
	return hd.PlaceHold(ctx, hold)
}

// ReleaseHold lets the retention remove the entries of a hold again.
func (h *Hub) ReleaseHold(ctx context.Context, id string) error {
	hd, ok := h.cfg.Backlog.(Holder)
	if !ok {
		return ErrHoldUnsupported
	}
	return hd.ReleaseHold(ctx, id)
}

var _ Holder = (*SQLiteBacklog)(nil)

const sqliteHoldSchema = `
CREATE TABLE IF NOT EXISTS log_holds (
	id      TEXT    PRIMARY KEY,
	service TEXT    NOT NULL,
	env     TEXT    NOT NULL,
	from_ns INTEGER NOT NULL,
	to_ns   INTEGER NOT NULL,
	reason  TEXT    NOT NULL
);
`

// notHeld is a condition on the log_entries row named alias: no hold of
// its stream (?1, ?2) covers it.
func notHeld(alias string) string {
	return ` AND NOT EXISTS (SELECT 1 FROM log_holds h WHERE h.service = ?1 AND h.env = ?2
		AND ` + alias + `.observed_ns BETWEEN h.from_ns AND h.to_ns)`
}

// PlaceHold implements Holder.
func (b *SQLiteBacklog) PlaceHold(ctx context.Context, h Hold) error {
	_, err := b.db.ExecContext(ctx, `INSERT OR REPLACE INTO log_holds (id, service, env, from_ns, to_ns, reason)
		VALUES (?, ?, ?, ?, ?, ?)`, h.ID, h.Stream.Service, h.Stream.Env, h.From.UnixNano(), h.To.UnixNano(), h.Reason)
	if err != nil {
		return fmt.Errorf("place hold %s: %w", h.ID, err)
	}
	return nil
}

// ReleaseHold implements Holder.
func (b *SQLiteBacklog) ReleaseHold(ctx context.Context, id string) error {
	if _, err := b.db.ExecContext(ctx, `DELETE FROM log_holds WHERE id = ?`, id); err != nil {
		return fmt.Errorf("release hold %s: %w", id, err)
	}
	return nil
}

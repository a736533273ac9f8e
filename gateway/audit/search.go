package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Search limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Query selects events. Empty fields do not filter.
type Query struct {
	Actor     string    // matches the actor's subject or email exactly
	Action    string    // exact, or a prefix when it ends in ".*" (e.g. "auth.*")
	Outcome   string    // exact
	GrantID   string    // target grant id
	RequestID string    // the access request id (target.request_id) or the HTTP request id
	Service   string    // target service
	Env       string    // target environment
	Since     time.Time // inclusive; by event time
	Until     time.Time // exclusive; by event time
	Limit     int       // page size; zero means DefaultLimit, capped at MaxLimit
	Cursor    string    // opaque, from Page.NextCursor
}

// Page is one page of search results, newest first.
type Page struct {
	Items      []Event `json:"items"`
	NextCursor string  `json:"next_cursor,omitempty"` // empty on the last page
}

// where renders the filters (not the cursor) as SQL.
func (q Query) where() (string, []any) {
	conds := []string{"length(record) > 0"} // records emptied by retention are not searchable
	var args []any
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if q.Actor != "" {
		add("(actor_subject = ? OR actor_email = ?)", q.Actor, q.Actor)
	}
	if q.Action != "" && q.Action != "*" {
		if p, ok := strings.CutSuffix(q.Action, "*"); ok && strings.HasSuffix(p, ".") {
			// Every action with prefix "x." sorts in ["x.", "x/"): '/' follows '.'.
			add("action >= ? AND action < ?", p, p[:len(p)-1]+"/")
		} else {
			add("action = ?", q.Action)
		}
	}
	if q.Outcome != "" {
		add("outcome = ?", q.Outcome)
	}
	if q.GrantID != "" {
		add("grant_id = ?", q.GrantID)
	}
	if q.RequestID != "" {
		add("(target_request_id = ? OR request_id = ?)", q.RequestID, q.RequestID)
	}
	if q.Service != "" {
		add("service = ?", q.Service)
	}
	if q.Env != "" {
		add("env = ?", q.Env)
	}
	if !q.Since.IsZero() {
		add("time_ns >= ?", q.Since.UnixNano())
	}
	if !q.Until.IsZero() {
		add("time_ns < ?", q.Until.UnixNano())
	}
	return strings.Join(conds, " AND "), args
}

// Matches reports whether ev, as its record says, satisfies q's filters
// (not the cursor). Every store applies it to what it decoded, so a search
// column or index can only narrow a query, never put an event under a
// filter its record does not satisfy.
func (q Query) Matches(ev *Event) bool {
	if q.Actor != "" && ev.Actor.Subject != q.Actor && ev.Actor.Email != q.Actor {
		return false
	}
	if q.Action != "" && q.Action != "*" {
		if p, ok := strings.CutSuffix(q.Action, "*"); ok && strings.HasSuffix(p, ".") {
			if !strings.HasPrefix(ev.Action, p) {
				return false
			}
		} else if ev.Action != q.Action {
			return false
		}
	}
	switch {
	case q.Outcome != "" && ev.Outcome != q.Outcome,
		q.GrantID != "" && ev.Target.GrantID != q.GrantID,
		q.RequestID != "" && ev.Target.RequestID != q.RequestID && ev.RequestID != q.RequestID,
		q.Service != "" && ev.Target.Service != q.Service,
		q.Env != "" && ev.Target.Env != q.Env,
		!q.Since.IsZero() && ev.Time.Before(q.Since),
		!q.Until.IsZero() && !ev.Time.Before(q.Until):
		return false
	}
	return true
}

func (q Query) limit() int {
	switch {
	case q.Limit <= 0:
		return DefaultLimit
	case q.Limit > MaxLimit:
		return MaxLimit
	}
	return q.Limit
}

const cursorPrefix = "c1."

// EncodeCursor makes the opaque search cursor for "events before seq",
// shared by every store that searches the trail.
func EncodeCursor(seq int64) string { return encodeCursor(seq) }

// DecodeCursor reverses EncodeCursor; a cursor it did not make is ErrInvalid.
func DecodeCursor(c string) (int64, error) { return decodeCursor(c) }

func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		if s, ok := strings.CutPrefix(string(b), cursorPrefix); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("%w: cursor", ErrInvalid)
}

// Search returns events matching q, newest first, one page at a time.
func (s *Store) Search(ctx context.Context, q Query) (Page, error) {
	where, args := q.where()
	if q.Cursor != "" {
		before, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, fmt.Errorf("audit search: %w", err)
		}
		where += " AND seq < ?"
		args = append(args, before)
	}
	limit := q.limit()
	args = append(args, limit+1)
	rows, err := s.rdb.QueryContext(ctx,
		`SELECT seq, record, hash FROM events WHERE `+where+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return Page{}, fmt.Errorf("audit search: %w", unavailable("query", err))
	}
	defer rows.Close()
	page := Page{Items: []Event{}}
	for rows.Next() {
		var seq int64
		var rec, hash []byte
		if err := rows.Scan(&seq, &rec, &hash); err != nil {
			return Page{}, fmt.Errorf("audit search: %w", unavailable("scan", err))
		}
		if len(page.Items) == limit {
			page.NextCursor = encodeCursor(page.Items[limit-1].Seq)
			break
		}
		ev, err := DecodeRecord(rec, hash)
		if err != nil {
			return Page{}, fmt.Errorf("audit search: event seq %d: %w: %v", seq, ErrTampered, err)
		}
		if !q.Matches(&ev) {
			continue // a search column disagrees with its record (Verify reports it)
		}
		page.Items = append(page.Items, ev)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("audit search: %w", unavailable("query", err))
	}
	return page, nil
}

// Get returns the event with the given id, or an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (Event, error) {
	var rec, hash []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT record, hash FROM events WHERE id = ?`, id).Scan(&rec, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Event{}, fmt.Errorf("audit get %q: %w", id, ErrNotFound)
	case err != nil:
		return Event{}, fmt.Errorf("audit get: %w", unavailable("query", err))
	case len(rec) == 0:
		return Event{}, fmt.Errorf("audit get %q: %w: purged by retention", id, ErrNotFound)
	}
	ev, err := DecodeRecord(rec, hash)
	if err != nil {
		return Event{}, fmt.Errorf("audit get %q: %w: %v", id, ErrTampered, err)
	}
	return ev, nil
}

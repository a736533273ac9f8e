package audit

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// Record is one event exactly as stored: the canonical bytes that were
// hashed and the hash. Consumers that need to prove what they received (sinks,
// archives) should ship Line, not a re-encoding of the decoded Event.
type Record struct {
	Seq    int64     // chain position (gapless, from 1)
	ID     string    // event id; receivers deduplicate on it
	Time   time.Time // event time (a copy of the record's "time")
	Action string    // a copy of the record's "action"
	Bytes  []byte    // canonical record bytes, exactly as hashed
	Hash   string    // hex SHA-256(prev hash || Bytes)
}

// Event decodes the record.
func (r Record) Event() (Event, error) {
	h, err := hex.DecodeString(r.Hash)
	if err != nil {
		return Event{}, fmt.Errorf("%w: record %d hash", ErrTampered, r.Seq)
	}
	ev, err := DecodeRecord(r.Bytes, h)
	if err != nil {
		return Event{}, fmt.Errorf("%w: record %d: %v", ErrTampered, r.Seq, err)
	}
	return ev, nil
}

// Line returns the NDJSON form Export writes: the stored record with
// `,"hash":"<hex>"` appended as its last member and a trailing newline.
// Removing that member gives back the bytes that were hashed.
func (r Record) Line() []byte {
	return appendLine(make([]byte, 0, len(r.Bytes)+80), r.Bytes, r.Hash)
}

// appendLine appends rec (which must end in '}') with its hex hash as the
// last member, and a newline.
func appendLine(dst, rec []byte, hexHash string) []byte {
	dst = append(dst, rec[:len(rec)-1]...)
	dst = append(dst, `,"hash":"`...)
	dst = append(dst, hexHash...)
	return append(dst, "\"}\n"...)
}

// MaxAfterLimit caps After's limit.
const MaxAfterLimit = 10_000

// After returns up to limit stored events with seq > after, oldest first.
// Purged events (see Purge) are skipped, so the seqs returned may have gaps
// where retention removed records. It is the feed for sinks: a consumer
// keeps the last seq it delivered and asks for what follows.
func (s *Store) After(ctx context.Context, after int64, limit int) ([]Record, error) {
	if limit <= 0 || limit > MaxAfterLimit {
		limit = MaxAfterLimit
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, id, time_ns, action, record, hash FROM events
		WHERE seq > ? AND length(record) > 0 ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit after: %w", unavailable("query", err))
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var r Record
		var ns int64
		var hash []byte
		if err := rows.Scan(&r.Seq, &r.ID, &ns, &r.Action, &r.Bytes, &hash); err != nil {
			return nil, fmt.Errorf("audit after: %w", unavailable("scan", err))
		}
		if len(r.Bytes) < 2 || r.Bytes[len(r.Bytes)-1] != '}' {
			return nil, fmt.Errorf("audit after: seq %d: %w: malformed record", r.Seq, ErrTampered)
		}
		r.Time = time.Unix(0, ns).UTC()
		r.Hash = hex.EncodeToString(hash)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit after: %w", unavailable("query", err))
	}
	return out, nil
}

// Stream view actions and the details key that pairs them.
const (
	ActionStreamOpened = "stream.opened"
	ActionStreamClosed = "stream.closed"
	DetailViewID       = "view_id"
)

// OpenViews returns the successful stream.opened events that no later
// stream.closed event closes (matched on details.view_id), oldest first.
// After a crash these are the views that were cut off; the gateway writes a
// stream.closed with outcome "interrupted" for each at start-up. Opened
// events without a view_id are ignored (they cannot be matched).
func (s *Store) OpenViews(ctx context.Context) ([]Event, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT seq, action, outcome,
			coalesce(json_extract(record, '$.details.view_id'), '')
		FROM events WHERE action IN (?, ?) AND length(record) > 0 ORDER BY seq`,
		ActionStreamOpened, ActionStreamClosed)
	if err != nil {
		return nil, fmt.Errorf("audit open views: %w", unavailable("query", err))
	}
	open := map[string]int64{} // view id -> seq of its stream.opened
	for rows.Next() {
		var seq int64
		var action, outcome string
		var view any
		if err := rows.Scan(&seq, &action, &outcome, &view); err != nil {
			rows.Close()
			return nil, fmt.Errorf("audit open views: %w", unavailable("scan", err))
		}
		id := fmt.Sprint(view)
		if id == "" {
			continue
		}
		switch {
		case action == ActionStreamClosed:
			delete(open, id)
		case outcome == OutcomeSuccess:
			open[id] = seq
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("audit open views: %w", unavailable("query", err))
	}
	out := make([]Event, 0, len(open))
	for _, seq := range open {
		var rec, hash []byte
		if err := s.rdb.QueryRowContext(ctx, `SELECT record, hash FROM events WHERE seq = ?`, seq).Scan(&rec, &hash); err != nil {
			return nil, fmt.Errorf("audit open views: %w", unavailable("query", err))
		}
		ev, err := DecodeRecord(rec, hash)
		if err != nil {
			return nil, fmt.Errorf("audit open views: seq %d: %w: %v", seq, ErrTampered, err)
		}
		out = append(out, ev)
	}
	slices.SortFunc(out, func(a, b Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

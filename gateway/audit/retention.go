package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// ErrLegalHold means a legal hold is in effect, so nothing may be purged.
var ErrLegalHold = errors.New("audit: legal hold in effect")

// Retention actions.
const (
	ActionRetentionPurged    = "retention.purged"
	ActionRetentionLegalHold = "retention.legal_hold"
)

// purgeChunk is how many rows one purge transaction empties, so appends
// waiting for the write connection are held up only briefly.
const purgeChunk = 2000

// PurgeResult describes one purge.
type PurgeResult struct {
	From, To int64 // the seq range whose records were emptied (0, 0 if none)
	Count    int64 // records emptied
	Event    Event // the retention.purged event (zero if nothing was purged)
}

// LegalHold is the current legal hold state, as recorded in the trail.
type LegalHold struct {
	On     bool      `json:"on"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since,omitzero"` // time of the event that set the state
	By     Actor     `json:"by,omitzero"`
	Event  string    `json:"event_id,omitempty"`
}

// SetLegalHold turns the legal hold on or off, recorded as a
// retention.legal_hold event (details.on, reason, actor). While it is on,
// Purge refuses with ErrLegalHold. The trail itself is the state, so the
// hold cannot be lifted without leaving a record.
func (s *Store) SetLegalHold(ctx context.Context, on bool, reason string, actor Actor) (Event, error) {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	ev, err := s.Append(ctx, Event{Action: ActionRetentionLegalHold, Actor: actor, Outcome: OutcomeSuccess,
		Reason: reason, Details: map[string]any{"on": on}})
	if err != nil {
		return Event{}, fmt.Errorf("audit legal hold: %w", err)
	}
	return ev, nil
}

// LegalHold returns the hold state from the newest retention.legal_hold
// event (off when there is none).
func (s *Store) LegalHold(ctx context.Context) (LegalHold, error) {
	var rec, hash []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT record, hash FROM events
		WHERE action = ? AND length(record) > 0 ORDER BY seq DESC LIMIT 1`, ActionRetentionLegalHold).Scan(&rec, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return LegalHold{}, nil
	case err != nil:
		return LegalHold{}, fmt.Errorf("audit legal hold: %w", unavailable("query", err))
	}
	ev, err := DecodeRecord(rec, hash)
	if err != nil {
		return LegalHold{}, fmt.Errorf("audit legal hold: %w: %v", ErrTampered, err)
	}
	on, _ := ev.Details["on"].(bool)
	return LegalHold{On: on, Reason: ev.Reason, Since: ev.Time, By: ev.Actor, Event: ev.ID}, nil
}

// Purge empties the records of the oldest events whose time is before
// `before`, keeping their seq, id, time, action, outcome, hash and tree
// hashes, and every checkpoint, so Verify still checks the chain and the
// tree across them. It stops at the first event at or after `before`, so
// it purges a prefix of the log even if event times are out of order.
//
// It first appends a retention.purged event (details: seq_from, seq_to,
// count, before, root_at_cut), then empties the records in chunks. Verify
// accepts an empty record only at or below the seq_to of the newest
// retention.purged event. A legal hold makes Purge return ErrLegalHold.
// Purge and SetLegalHold are serialised with each other.
func (s *Store) Purge(ctx context.Context, before time.Time, actor Actor) (PurgeResult, error) {
	s.retMu.Lock()
	defer s.retMu.Unlock()
	hold, err := s.LegalHold(ctx)
	if err != nil {
		return PurgeResult{}, fmt.Errorf("audit purge: %w", err)
	}
	if hold.On {
		return PurgeResult{}, fmt.Errorf("audit purge: %w (since %s: %s)", ErrLegalHold,
			hold.Since.Format(time.RFC3339), hold.Reason)
	}
	horizon, err := s.purgeHorizon(ctx)
	if err != nil {
		return PurgeResult{}, fmt.Errorf("audit purge: %w", err)
	}
	// Finish a purge a crash interrupted (its event is already written).
	if err := s.emptyRecords(ctx, 1, horizon, horizon); err != nil {
		return PurgeResult{}, fmt.Errorf("audit purge: %w", err)
	}
	var cut int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT coalesce(
			(SELECT min(seq) FROM events WHERE seq > ?1 AND time_ns >= ?2),
			(SELECT coalesce(max(seq), 0) + 1 FROM events)) - 1`,
		horizon, before.UnixNano()).Scan(&cut); err != nil {
		return PurgeResult{}, fmt.Errorf("audit purge: %w", unavailable("query", err))
	}
	if cut <= horizon {
		return PurgeResult{}, nil
	}
	root, err := tlog.TreeHash(cut, &hashReader{ctx: ctx, q: s.rdb})
	if err != nil {
		return PurgeResult{}, fmt.Errorf("audit purge: %w", unavailable("tree root", err))
	}
	res := PurgeResult{From: horizon + 1, To: cut, Count: cut - horizon}
	res.Event, err = s.Append(ctx, Event{Action: ActionRetentionPurged, Actor: actor, Outcome: OutcomeSuccess,
		Details: map[string]any{
			"seq_from": res.From, "seq_to": res.To, "count": res.Count,
			"before": before.UTC().Format(time.RFC3339Nano), "root_at_cut": base64.StdEncoding.EncodeToString(root[:]),
		}})
	if err != nil {
		return PurgeResult{}, fmt.Errorf("audit purge: %w", err)
	}
	if err := s.emptyRecords(ctx, res.From, res.To, cut); err != nil {
		return res, fmt.Errorf("audit purge: %w", err)
	}
	s.stats.purged.Add(res.Count)
	s.log.Info("audit retention purged events", "seq_from", res.From, "seq_to", res.To, "count", res.Count)
	return res, nil
}

// purgeHorizon reads the highest seq retention may empty.
func (s *Store) purgeHorizon(ctx context.Context) (int64, error) {
	var v string
	err := s.rdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'purge_horizon'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, unavailable("read purge horizon", err)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: purge horizon %q", ErrTampered, v)
	}
	return n, nil
}

// emptyRecords raises the purge horizon to horizon and empties the records
// (and search copies) of seq from..to that still have one, a chunk per
// transaction on the write connection.
func (s *Store) emptyRecords(ctx context.Context, from, to, horizon int64) error {
	for lo := from; lo <= to; lo += purgeChunk {
		hi := min(to, lo+purgeChunk-1)
		tx, err := s.wdb.BeginTx(ctx, nil)
		if err != nil {
			return unavailable("begin", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('purge_horizon', ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value
			WHERE CAST(excluded.value AS INTEGER) > CAST(meta.value AS INTEGER)`, strconv.FormatInt(horizon, 10)); err != nil {
			tx.Rollback()
			return unavailable("write purge horizon", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE events SET record = X'', actor_subject = '', actor_email = '',
			request_id = '', target_request_id = '', grant_id = '', service = '', env = ''
			WHERE seq BETWEEN ? AND ? AND length(record) > 0`, lo, hi); err != nil {
			tx.Rollback()
			return unavailable("empty records", err)
		}
		if err := tx.Commit(); err != nil {
			return unavailable("commit", err)
		}
	}
	return nil
}

// authorizedHorizon returns the seq_to of the newest intact
// retention.purged event: Verify's limit for emptied records. It reads the
// record itself (not the search columns), so a forged horizon in meta does
// not widen it.
func authorizedHorizon(ctx context.Context, q rowQuerier) (int64, error) {
	var rec []byte
	err := q.QueryRowContext(ctx, `SELECT record FROM events WHERE action = ? AND length(record) > 0
		ORDER BY seq DESC LIMIT 1`, ActionRetentionPurged).Scan(&rec)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read retention events: %w", err)
	}
	var v struct {
		Seq     int64  `json:"seq"`
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
		Details struct {
			SeqTo int64 `json:"seq_to"`
		} `json:"details"`
	}
	if json.Unmarshal(rec, &v) != nil || v.Action != ActionRetentionPurged || v.Outcome != OutcomeSuccess ||
		v.Details.SeqTo >= v.Seq {
		return 0, nil // not a valid authorisation; the scan reports the record if it was altered
	}
	return v.Details.SeqTo, nil
}

// retentionLoop purges events older than cfg.Retention every
// cfg.RetentionInterval until ctx ends.
func (s *Store) retentionLoop(ctx context.Context) {
	defer close(s.retDone)
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		_, err := s.Purge(ctx, s.now().Add(-s.cfg.Retention), Actor{Kind: ActorSystem, ID: "retention"})
		switch {
		case errors.Is(err, ErrLegalHold):
			s.log.Info("audit retention skipped: legal hold in effect")
		case err != nil && ctx.Err() == nil:
			s.log.Error("audit retention failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

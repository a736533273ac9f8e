package audit

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Export formats.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// exportPage is how many rows Export reads per query.
const exportPage = 1000

// Export writes the events matching q oldest first (Cursor is ignored; a
// positive Limit caps the number of events; zero means all).
//
// "ndjson": one line per event: the stored record with `,"hash":"<hex>"`
// appended as its last member. Removing that suffix gives back the exact
// bytes that were hashed, so a consumer can check
// hash == SHA-256(hex-decode(prev_hash) || record) line by line.
//
// "csv": a header row, then one row per event with flattened fields and
// details as JSON. Cells starting with = + - @ (spreadsheet formulas) are
// prefixed with a single quote; the NDJSON form is the faithful one.
func (s *Store) Export(ctx context.Context, w io.Writer, format string, q Query) error {
	var emit func(rec, hash []byte) error
	var flush func() error
	switch format {
	case FormatNDJSON:
		bw := bufio.NewWriterSize(w, 64<<10)
		emit = func(rec, hash []byte) error {
			if len(rec) < 2 || rec[len(rec)-1] != '}' {
				return fmt.Errorf("%w: malformed record", ErrTampered)
			}
			bw.Write(rec[:len(rec)-1])
			bw.WriteString(`,"hash":"`)
			bw.WriteString(hex.EncodeToString(hash))
			_, err := bw.WriteString("\"}\n")
			return err
		}
		flush = bw.Flush
	case FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(csvHeader); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		emit = func(rec, hash []byte) error {
			ev, err := DecodeRecord(rec, hash)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrTampered, err)
			}
			return cw.Write(csvRow(ev))
		}
		flush = func() error { cw.Flush(); return cw.Error() }
	default:
		return fmt.Errorf("audit export: %w: format %q", ErrInvalid, format)
	}

	where, args := q.where()
	filtered := q != (Query{Limit: q.Limit})
	var after, n int64
	for {
		pageArgs := append(append([]any(nil), args...), after, exportPage)
		rows, err := s.rdb.QueryContext(ctx,
			`SELECT seq, record, hash FROM events WHERE `+where+` AND seq > ? ORDER BY seq LIMIT ?`, pageArgs...)
		if err != nil {
			return fmt.Errorf("audit export: %w", unavailable("query", err))
		}
		got := 0
		for rows.Next() {
			var rec, hash []byte
			if err := rows.Scan(&after, &rec, &hash); err != nil {
				rows.Close()
				return fmt.Errorf("audit export: %w", unavailable("scan", err))
			}
			got++
			if filtered {
				// The columns chose the row; the record must agree.
				ev, err := DecodeRecord(rec, hash)
				if err != nil {
					rows.Close()
					return fmt.Errorf("audit export: seq %d: %w: %v", after, ErrTampered, err)
				}
				if !q.Matches(&ev) {
					continue
				}
			}
			if err := emit(rec, hash); err != nil {
				rows.Close()
				return fmt.Errorf("audit export: seq %d: %w", after, err)
			}
			if n++; q.Limit > 0 && n >= int64(q.Limit) {
				break
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return fmt.Errorf("audit export: %w", unavailable("query", err))
		}
		if got < exportPage || (q.Limit > 0 && n >= int64(q.Limit)) {
			break
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

// CSVHeader is the column row of the CSV export, shared by every store
// that exports the trail.
func CSVHeader() []string { return append([]string(nil), csvHeader...) }

// CSVRow is one event as a CSV export row; cells a spreadsheet could read
// as a formula are defused with a leading quote.
func CSVRow(ev Event) []string { return csvRow(ev) }

var csvHeader = []string{
	"seq", "id", "time", "action", "outcome", "reason",
	"actor_kind", "actor_issuer", "actor_subject", "actor_email", "actor_name", "actor_groups", "actor_id",
	"source_addr", "user_agent", "request_id",
	"target_request_id", "target_grant_id", "target_review_id", "target_source_id", "target_service", "target_env",
	"decision_id", "policy_revision", "details", "prev_hash", "hash", "schema",
}

func csvRow(ev Event) []string {
	details := ""
	if len(ev.Details) > 0 {
		b, _ := json.Marshal(ev.Details) // decoded from JSON, so it encodes
		details = string(b)
	}
	row := []string{
		strconv.FormatInt(ev.Seq, 10), ev.ID, ev.Time.UTC().Format(time.RFC3339Nano), ev.Action, ev.Outcome, ev.Reason,
		ev.Actor.Kind, ev.Actor.Issuer, ev.Actor.Subject, ev.Actor.Email, ev.Actor.Name,
		strings.Join(ev.Actor.Groups, ";"), ev.Actor.ID,
		ev.SourceAddr, ev.UserAgent, ev.RequestID,
		ev.Target.RequestID, ev.Target.GrantID, ev.Target.ReviewID, ev.Target.SourceID, ev.Target.Service, ev.Target.Env,
		ev.DecisionID, ev.PolicyRevision, details, ev.PrevHash, ev.Hash, strconv.Itoa(ev.Schema),
	}
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			row[i] = "'" + c
		}
	}
	return row
}

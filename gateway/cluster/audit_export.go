package cluster

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// Export implements gateway.Auditor: the events matching q, oldest first, as
// audit.FormatNDJSON (the stored record with its hash appended as the last
// member, as the SQLite store writes it) or audit.FormatCSV. A positive
// q.Limit caps the number of events.
func (a *Audit) Export(ctx context.Context, w io.Writer, format string, q audit.Query) error {
	var emit func(s stored, ev *audit.Event) error
	var flush func() error
	switch format {
	case audit.FormatNDJSON:
		bw := bufio.NewWriterSize(w, 64<<10)
		emit = func(s stored, _ *audit.Event) error {
			if len(s.rec) < 2 || s.rec[len(s.rec)-1] != '}' {
				return fmt.Errorf("%w: malformed record", audit.ErrTampered)
			}
			bw.Write(s.rec[:len(s.rec)-1])
			bw.WriteString(`,"hash":"`)
			bw.WriteString(s.hash)
			_, err := bw.WriteString("\"}\n")
			return err
		}
		flush = bw.Flush
	case audit.FormatCSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(csvColumns); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		emit = func(_ stored, ev *audit.Event) error { return cw.Write(csvCells(ev)) }
		flush = func() error { cw.Flush(); return cw.Error() }
	default:
		return fmt.Errorf("audit export: %w: format %q", audit.ErrInvalid, format)
	}
	n := 0
	err := a.scan(ctx, false, 0, func(s stored) (bool, error) {
		ev, err := s.event()
		if err != nil {
			return false, err
		}
		if !matchQuery(q, &ev) {
			return true, nil
		}
		if err := emit(s, &ev); err != nil {
			return false, err
		}
		n++
		return q.Limit <= 0 || n < q.Limit, nil
	})
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

var csvColumns = []string{
	"seq", "id", "time", "action", "outcome", "reason",
	"actor_kind", "actor_issuer", "actor_subject", "actor_email", "actor_name", "actor_groups", "actor_id",
	"source_addr", "user_agent", "request_id",
	"target_request_id", "target_grant_id", "target_review_id", "target_source_id", "target_service", "target_env",
	"decision_id", "policy_revision", "details", "prev_hash", "hash", "schema",
}

// defuse stops a spreadsheet from reading a cell as a formula.
func defuse(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvCells(ev *audit.Event) []string {
	details := ""
	if len(ev.Details) > 0 {
		b, _ := json.Marshal(ev.Details)
		details = string(b)
	}
	cells := []string{
		strconv.FormatInt(ev.Seq, 10), ev.ID, ev.Time.UTC().Format(time.RFC3339Nano), ev.Action, ev.Outcome, ev.Reason,
		ev.Actor.Kind, ev.Actor.Issuer, ev.Actor.Subject, ev.Actor.Email, ev.Actor.Name,
		strings.Join(ev.Actor.Groups, ";"), ev.Actor.ID, ev.SourceAddr, ev.UserAgent, ev.RequestID,
		ev.Target.RequestID, ev.Target.GrantID, ev.Target.ReviewID, ev.Target.SourceID, ev.Target.Service, ev.Target.Env,
		ev.DecisionID, ev.PolicyRevision, details, ev.PrevHash, ev.Hash, strconv.Itoa(ev.Schema),
	}
	for i := range cells {
		cells[i] = defuse(cells[i])
	}
	return cells
}

package cluster

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"

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
		if err := cw.Write(audit.CSVHeader()); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		emit = func(_ stored, ev *audit.Event) error { return cw.Write(audit.CSVRow(*ev)) }
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
		if !q.Matches(&ev) {
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

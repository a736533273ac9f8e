package cli

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// table is tabular command output, printable as aligned text or CSV. Its
// JSON form is the server's own objects, one per line (raw).
type table struct {
	header []string
	rows   [][]string
	raw    []json.RawMessage
}

func (t *table) add(raw json.RawMessage, cells ...string) {
	t.rows = append(t.rows, cells)
	t.raw = append(t.raw, raw)
}

// checkOutput validates an --output value against the formats a command offers.
func checkOutput(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return exitcode.Usagef("--output must be one of %s", strings.Join(allowed, ", "))
}

func (t *table) write(w io.Writer, format string) error {
	switch format {
	case "json":
		for _, r := range t.raw {
			if err := writeCompactJSON(w, r); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write(t.header)
		for _, r := range t.rows {
			safe := make([]string, len(r))
			for i, cell := range r {
				if cell == "-" { // the text form's "nothing"
					cell = ""
				}
				safe[i] = csvSafe(cell)
			}
			_ = cw.Write(safe)
		}
		cw.Flush()
		return cw.Error()
	default:
		if len(t.rows) == 0 {
			return nil
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
		for _, r := range t.rows {
			cells := make([]string, len(r))
			for i, cell := range r {
				cells[i] = oneLine(cell, 80)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		return tw.Flush()
	}
}

// csvSafe defuses cells a spreadsheet would run as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// oneLine makes a cell printable on one line: control characters become
// spaces (a log or reason must not move the cursor) and long text is cut.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); max > 0 && len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

func writeCompactJSON(w io.Writer, raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// fmtTime is how tables show a time: local, to the second.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// fmtClock is a time of day for sentences ("until 15:04").
func fmtClock(t time.Time) string { return t.Local().Format("15:04:05") }

// fmtLeft is a rounded remaining duration for sentences ("29m").
func fmtLeft(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	s := strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package gateway

import (
	"encoding/json"
	"slices"

	"github.com/loggate/loggate/gateway/logs"
)

// recordSaver decides what of a live view's replay record goes into its
// next counts save. The record changes shape only on a break (a drop, a
// pause, a filter change, a sampled stretch), while its last range's end
// moves with every message: the record is written only when its shape
// changed since the last save, and the last range's end goes with every
// save's counts (audit.ViewCounts.RecordTo). Only the view's serving
// goroutine uses it.
type recordSaver struct {
	last  logs.ViewRecord
	saved bool
	patch bool // the saved record's last range is the live one (not cut by fitRecord)
}

// next returns the record to write (nil: unchanged) and the end of its
// last range, for counts taken in the same Stats snapshot as rec.
func (rs *recordSaver) next(rec logs.ViewRecord) (json.RawMessage, int64, error) {
	var raw json.RawMessage
	if !rs.saved || !sameShape(rs.last, rec) {
		fit := fitRecord(rec)
		b, err := json.Marshal(fit)
		if err != nil {
			return nil, 0, err
		}
		raw = b
		rs.last, rs.saved = rec, true
		rs.patch = len(fit.Ranges) == len(rec.Ranges) && len(rec.Ranges) > 0
	}
	if !rs.patch {
		return raw, 0, nil
	}
	return raw, rec.Ranges[len(rec.Ranges)-1].To, nil
}

// forget makes the next save write the record again (the last one may
// not have reached the file).
func (rs *recordSaver) forget() { rs.saved = false }

// sameShape reports whether b differs from a at most in its last range's
// end.
func sameShape(a, b logs.ViewRecord) bool {
	if len(a.Epochs) != len(b.Epochs) || a.Truncated != b.Truncated || len(a.Ranges) != len(b.Ranges) ||
		!slices.Equal(a.Skips, b.Skips) {
		return false
	}
	n := len(a.Ranges)
	if n == 0 {
		return true
	}
	if !slices.Equal(a.Ranges[:n-1], b.Ranges[:n-1]) {
		return false
	}
	x, y := a.Ranges[n-1], b.Ranges[n-1]
	return x.Epoch == y.Epoch && x.From == y.From && x.Sampled == y.Sampled
}

// restoreRecord is the inverse for recovery: the saved record with its
// last range ending where the save said.
func restoreRecord(raw json.RawMessage, to int64) (logs.ViewRecord, bool) {
	var rec logs.ViewRecord
	if len(raw) == 0 || json.Unmarshal(raw, &rec) != nil {
		return rec, false
	}
	if n := len(rec.Ranges); n > 0 && to >= rec.Ranges[n-1].From {
		rec.Ranges[n-1].To = to
	}
	return rec, true
}

package gateway

import (
	"testing"

	"github.com/loggate/loggate/gateway/logs"
)

// A live view's record is written again only when it changes shape; the
// last range's end travels with every save, and restoring puts it back.
func TestRecordSaverWritesTheRecordOnlyWhenItsShapeChanges(t *testing.T) {
	ep := []logs.ReplayEpoch{{}}
	rec := func(ranges ...logs.SeqRange) logs.ViewRecord { return logs.ViewRecord{Epochs: ep, Ranges: ranges} }
	var rs recordSaver
	steps := []struct {
		name    string
		rec     logs.ViewRecord
		written bool
		to      int64
	}{
		{"the first save", rec(logs.SeqRange{From: 1, To: 5}), true, 5},
		{"the last range grew", rec(logs.SeqRange{From: 1, To: 9}), false, 9},
		{"a new range (a drop)", rec(logs.SeqRange{From: 1, To: 9}, logs.SeqRange{From: 12, To: 14}), true, 14},
		{"it grew again", rec(logs.SeqRange{From: 1, To: 9}, logs.SeqRange{From: 12, To: 30}), false, 30},
		{"a filter change", logs.ViewRecord{Epochs: []logs.ReplayEpoch{{}, {Filter: logs.Filter{MinLevel: "warn"}}},
			Ranges: []logs.SeqRange{{From: 1, To: 9}, {From: 12, To: 30}}}, true, 30},
	}
	var last []byte
	for _, s := range steps {
		raw, to, err := rs.next(s.rec)
		if err != nil {
			t.Fatal(err)
		}
		if (raw != nil) != s.written || to != s.to {
			t.Errorf("%s: record written %v, to %d; want %v, %d", s.name, raw != nil, to, s.written, s.to)
		}
		if raw != nil {
			last = raw
		}
		got, ok := restoreRecord(last, to)
		if !ok || len(got.Ranges) != len(s.rec.Ranges) || got.Ranges[len(got.Ranges)-1] != s.rec.Ranges[len(s.rec.Ranges)-1] ||
			len(got.Epochs) != len(s.rec.Epochs) {
			t.Errorf("%s: restored %+v, want %+v", s.name, got, s.rec)
		}
	}
	if _, ok := restoreRecord(nil, 3); ok {
		t.Error("restoreRecord of no record said ok")
	}
}

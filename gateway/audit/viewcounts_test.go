package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestViewCountsLoadTheNewestIntactSave(t *testing.T) {
	d, f := createViewCounts(t, "view_abc")
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i := int64(1); i <= 3; i++ {
		if err := f.Save(ViewCounts{ViewID: "view_abc", Entries: 100 * i, Bytes: 1000 * i, Digest: "ab", DigestKind: "sha256-chained",
			At: at.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := d.Load("view_abc"); !ok || c.Entries != 300 || c.Bytes != 3000 || !c.At.Equal(at.Add(3*time.Second)) {
		t.Errorf("Load = %+v, %v; want the third save", c, ok)
	}
	// A torn third save (a power cut mid-write) leaves the second readable.
	p := filepath.Join(d.dir, "view_abc"+viewSuffix)
	b, _ := os.ReadFile(p)
	b[viewSlot+20] ^= 0xff // the third save went to slot 1
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, ok := d.Load("view_abc"); !ok || c.Entries != 200 {
		t.Errorf("Load after a torn save = %+v, %v; want the second save", c, ok)
	}
	if _, ok := d.Load("view_other"); ok {
		t.Error("Load of a view never saved found counts")
	}
	if _, err := d.Create("../escape"); err == nil {
		t.Error("Create accepted a view id with a path in it")
	}
	f.Close(false)
	if err := d.RemoveAll(); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Load("view_abc"); ok {
		t.Error("counts still there after RemoveAll")
	}
}

// BenchmarkViewCountsSave is the cost a live view pays every
// --view-counts-interval: one positioned write of a 2 KiB slot.
func BenchmarkViewCountsSave(b *testing.B) {
	_, f := createViewCounts(b, "view_bench")
	defer f.Close(true)
	c := ViewCounts{ViewID: "view_bench", Entries: 123456, Bytes: 98765432, Dropped: 12, Sampled: 3,
		Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", DigestKind: "sha256-chained",
		Redactions: map[string]int64{"aws_access_key": 3, "bearer_token": 9}, Seconds: 600, At: time.Now()}
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Save(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpoolPut is the cost of spooling one event (fsync of the file
// and its directory): paid only while the trail is unavailable.
func BenchmarkSpoolPut(b *testing.B) {
	s, err := Open(b.Context(), Config{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	s.Close()
	sp, err := OpenSpool(SpoolConfig{Dir: b.TempDir(), Trail: s, RetryMin: time.Hour, RetryMax: time.Hour, MaxRecords: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	ev := closedEvent("view_bench", 10)
	ev.ID, ev.Time = NewEventID(), time.Now()
	for b.Loop() {
		if err := sp.put(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func TestViewCountsKeepTheRecordOfTheSave(t *testing.T) {
	d, f := createViewCounts(t, "view_rec")
	defer f.Close(true)
	recA := json.RawMessage(`{"epochs":[{"filter":{}}],"ranges":[{"epoch":0,"from":1,"to":0}]}`)
	recB := json.RawMessage(`{"epochs":[{"filter":{}}],"ranges":[{"epoch":0,"from":1,"to":9},{"epoch":0,"from":20,"to":0}]}`)
	save := func(entries, to int64, rec json.RawMessage) {
		t.Helper()
		if err := f.Save(ViewCounts{ViewID: "view_rec", Entries: entries, RecordTo: to, Record: rec}); err != nil {
			t.Fatal(err)
		}
	}
	save(10, 10, recA)
	save(20, 30, nil) // same shape: only the counts slot is written
	if c, ok := d.Load("view_rec"); !ok || c.Entries != 20 || c.RecordTo != 30 || string(c.Record) != string(recA) {
		t.Fatalf("Load = %+v (record %s), %v; want 20 entries, to 30, the first record", c, c.Record, ok)
	}
	save(25, 25, recB)
	if c, ok := d.Load("view_rec"); !ok || c.Entries != 25 || string(c.Record) != string(recB) {
		t.Fatalf("Load = %+v (record %s), %v; want 25 entries with the second record", c, c.Record, ok)
	}
	// A torn second record: the save before it, with its own record.
	p := filepath.Join(d.dir, "view_rec"+viewSuffix)
	b, _ := os.ReadFile(p)
	b[recordBase+spoolHeader+10] ^= 0xff // record gen 2 went to record slot 0
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, ok := d.Load("view_rec"); !ok || c.Entries != 20 || c.RecordTo != 30 || string(c.Record) != string(recA) {
		t.Errorf("Load after a torn record = %+v (record %s), %v; want the save before it, with the first record", c, c.Record, ok)
	}
	if err := f.Save(ViewCounts{ViewID: "view_rec", Record: make(json.RawMessage, MaxViewRecord)}); err == nil {
		t.Error("Save accepted a record larger than MaxViewRecord")
	}
}

// BenchmarkViewCountsSaveRecord is a save after the record changed shape
// (a drop, a pause, a filter change): the record slot, then the counts
// slot, here with a record of 512 ranges (its cap).
func BenchmarkViewCountsSaveRecord(b *testing.B) {
	_, f := createViewCounts(b, "view_bench")
	defer f.Close(true)
	var rec []byte
	rec = append(rec, `{"epochs":[{"filter":{"level":"warn"}}],"ranges":[`...)
	for i := range 512 {
		if i > 0 {
			rec = append(rec, ',')
		}
		rec = fmt.Appendf(rec, `{"epoch":0,"from":%d,"to":%d}`, 1000000+i*100, 1000000+i*100+50)
	}
	rec = append(rec, "]}"...)
	b.ReportMetric(float64(len(rec)), "record-bytes")
	c := ViewCounts{ViewID: "view_bench", Entries: 123456, Bytes: 98765432, Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		DigestKind: "sha256-chained", Seconds: 600, At: time.Now(), Record: rec, RecordTo: 1051250}
	b.ReportAllocs()
	for b.Loop() {
		if err := f.Save(c); err != nil {
			b.Fatal(err)
		}
	}
}

// createViewCounts opens a view-counts directory in a new temporary
// directory and creates the file of view id in it.
func createViewCounts(tb testing.TB, id string) (*ViewCountsDir, *ViewCountsFile) {
	tb.Helper()
	d, err := OpenViewCountsDir(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	f, err := d.Create(id)
	if err != nil {
		tb.Fatal(err)
	}
	return d, f
}

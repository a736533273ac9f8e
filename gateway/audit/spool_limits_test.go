package audit

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// An event the trail will never take (over MaxRecordBytes) is refused by
// Record, not spooled: spooled, it would be quarantined as rejected at the
// drain, after its caller was told it was kept (and had dropped its own
// fallback, such as the view's saved counts).
func TestSpoolRefusesAnEventTheTrailWouldReject(t *testing.T) {
	sp := openSpoolTest(t, t.TempDir(), downTrail(t))
	// An event already waits, so Record goes straight to the spool.
	if _, spooled, err := sp.Record(context.Background(), closedEvent("view_a", 1)); err != nil || !spooled {
		t.Fatalf("first Record: spooled=%v err=%v", spooled, err)
	}
	ev := closedEvent("view_big", 1)
	ev.Details["note"] = strings.Repeat("x", MaxRecordBytes)
	_, spooled, err := sp.Record(context.Background(), ev)
	if err == nil || !errors.Is(err, ErrInvalid) {
		t.Errorf("Record of an oversized event: spooled=%v err=%v, want ErrInvalid", spooled, err)
	}
	if d := sp.Stats().Depth; d != 1 {
		t.Errorf("spool depth %d, want 1 (the first event only)", d)
	}
}

// A spool file number that cannot be written (the name is taken) does not
// wedge the spool: the next Record uses the next number.
func TestSpoolWriteFailureDoesNotWedgeTheSpool(t *testing.T) {
	dir := t.TempDir()
	sp := openSpoolTest(t, dir, downTrail(t))
	if err := os.Mkdir(sp.path(sp.next, spoolSuffix), 0o700); err != nil { // taken after load
		t.Fatal(err)
	}
	if _, _, err := sp.Record(context.Background(), closedEvent("view_a", 1)); err == nil {
		t.Fatal("Record into a taken file name succeeded")
	}
	if _, spooled, err := sp.Record(context.Background(), closedEvent("view_b", 1)); err != nil || !spooled {
		t.Errorf("the next Record: spooled=%v err=%v, want it spooled", spooled, err)
	}
}

// Only names the spool writes are spool records: "5.evt" next to
// "00000000000000000005.evt" is not a second copy of record 5.
func TestSpoolLoadsOnlyItsOwnFileNames(t *testing.T) {
	dir := t.TempDir()
	b, err := EncodeSpoolRecord(func() Event {
		ev := closedEvent("view_a", 1)
		ev.ID, ev.Time = NewEventID(), time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
		return ev
	}())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00000000000000000005.evt", "5.evt"} {
		if err := os.WriteFile(dir+"/"+name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sp := openSpoolTest(t, dir, downTrail(t))
	if n := len(sp.Pending()); n != 1 {
		t.Errorf("loaded %d records, want 1", n)
	}
}

package cluster

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// The spool over the Redis trail: events spooled while Redis is down are
// appended once when it returns, also when a drain is cut between the
// append and the file's removal (the id index refuses the repeat).
func TestSpoolDrainsIntoRedisOnce(t *testing.T) {
	e := newEnv(t)
	if e.srv == nil {
		t.Skip("needs its own redis-server")
	}
	ctx := context.Background()
	a := e.audit(t)
	dir := t.TempDir()
	sp, err := audit.OpenSpool(audit.SpoolConfig{Dir: dir, Trail: a, RetryMin: time.Hour, RetryMax: time.Hour,
		AppendTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	ev, spooled, err := sp.Record(ctx, event(audit.ActionStreamClosed, "g"))
	if err != nil || !spooled {
		t.Fatalf("Record with Redis down = %v, spooled %v; want spooled", err, spooled)
	}
	sp.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.evt"))
	if len(files) != 1 {
		t.Fatalf("spool files = %v", files)
	}
	saved, _ := os.ReadFile(files[0])

	e.srv.Restart()
	for round := range 2 {
		if round == 1 { // the crash: the file survived its append
			if err := os.WriteFile(files[0], saved, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		sp, err := audit.OpenSpool(audit.SpoolConfig{Dir: dir, Trail: a, RetryMin: time.Hour, RetryMax: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := sp.Drain(ctx); err != nil {
			t.Fatalf("drain %d: %v", round, err)
		}
		if st := sp.Stats(); st.Depth != 0 || st.Drained != 1 {
			t.Errorf("drain %d: %+v, want drained 1", round, st)
		}
		sp.Close()
	}
	page, err := a.Search(ctx, audit.Query{Action: audit.ActionStreamClosed})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].ID != ev.ID || page.Items[0].Details[audit.DetailSpooledAt] == nil {
		t.Errorf("stream.closed in Redis = %+v, want exactly the spooled one with spooled_at", page.Items)
	}
	if rep, err := a.Verify(ctx); err != nil || !rep.OK() || rep.Spooled != 1 {
		t.Errorf("verify: %+v, %v; want ok with 1 spooled", rep, err)
	}
}

package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// appendAt appends n events one minute apart starting at start.
func appendAt(t *testing.T, s *Store, start time.Time, n int) []Event {
	t.Helper()
	out := make([]Event, n)
	for i := range n {
		ev := testEvent(i)
		ev.Time = start.Add(time.Duration(i) * time.Minute)
		got, err := s.Append(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = got
	}
	return out
}

var retentionActor = Actor{Kind: ActorUser, Subject: "admin", Email: "admin@example.com"}

func mustVerify(t *testing.T, dir string) Report {
	t.Helper()
	rep, err := Verify(context.Background(), dir, nil)
	if err != nil {
		t.Fatalf("Verify: %v %v", err, rep.Problems)
	}
	return rep
}

func TestPurgeKeepsTrailVerifiable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	evs := appendAt(t, s, t0, 10)

	res, err := s.Purge(ctx, t0.Add(5*time.Minute), retentionActor)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 1 || res.To != 5 || res.Count != 5 {
		t.Errorf("purge range %d..%d count %d, want 1..5 count 5", res.From, res.To, res.Count)
	}
	if res.Event.Action != "retention.purged" || res.Event.Seq != 11 || res.Event.Details["seq_to"] != int64(5) ||
		res.Event.Details["count"] != int64(5) || res.Event.Details["root_at_cut"] == "" {
		t.Errorf("purge event %+v", res.Event)
	}
	rep := mustVerify(t, dir)
	if rep.Purged != 5 || rep.PurgeHorizon != 5 || rep.Events != 11 {
		t.Errorf("report purged %d horizon %d events %d, want 5, 5, 11", rep.Purged, rep.PurgeHorizon, rep.Events)
	}

	// Purged events are gone from every read path; the rest are intact.
	if _, err := s.Get(ctx, evs[2].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get purged event: %v, want ErrNotFound", err)
	}
	if _, err := s.Proof(ctx, evs[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Proof of purged event: %v, want ErrNotFound", err)
	}
	p, err := s.Proof(ctx, evs[7].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(p, s.VerifierKey()); err != nil {
		t.Errorf("inclusion proof after purge: %v", err)
	}
	page, err := s.Search(ctx, Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, ev := range page.Items {
		seqs = append(seqs, ev.Seq)
	}
	if want := []int64{11, 10, 9, 8, 7, 6}; !slices.Equal(seqs, want) {
		t.Errorf("Search seqs %v, want %v", seqs, want)
	}
	recs, err := s.After(ctx, 0, 100)
	if err != nil || len(recs) != 6 || recs[0].Seq != 6 {
		t.Errorf("After(0) = %d records from seq %v, %v; want 6 from seq 6", len(recs), recs, err)
	}
	var buf bytes.Buffer
	if err := s.Export(ctx, &buf, FormatNDJSON, Query{}); err != nil || bytes.Count(buf.Bytes(), []byte("\n")) != 6 {
		t.Errorf("Export after purge: %d lines, %v; want 6", bytes.Count(buf.Bytes(), []byte("\n")), err)
	}

	// Nothing more is old enough; a second purge is a no-op without an event.
	if res, err := s.Purge(ctx, t0.Add(5*time.Minute), retentionActor); err != nil || res.Count != 0 {
		t.Errorf("repeated purge = %+v, %v; want nothing", res, err)
	}
	// The store reopens over purged rows and purges further later.
	s.Close()
	s = openTest(t, dir)
	appendAt(t, s, t0.Add(time.Hour), 2)
	res, err = s.Purge(ctx, t0.Add(30*time.Minute), retentionActor)
	// The first purge's event (seq 11) was written now, so it is kept.
	if err != nil || res.From != 6 || res.To != 10 {
		t.Errorf("second purge = %+v, %v; want 6..10", res, err)
	}
	if rep := mustVerify(t, dir); rep.Purged != 10 || rep.PurgeHorizon != 10 {
		t.Errorf("after second purge: purged %d horizon %d, want 10, 10", rep.Purged, rep.PurgeHorizon)
	}
	if st := s.Stats(); st.Purged != 5 {
		t.Errorf("Stats.Purged = %d, want 5 since reopen", st.Purged)
	}
}

// Event times out of order: the purge stops at the first event not old
// enough, so it always removes a prefix.
func TestPurgeStopsAtFirstYoungEvent(t *testing.T) {
	s := openTest(t, t.TempDir())
	for i, m := range []int{0, 1, 30, 2, 3} {
		ev := testEvent(i)
		ev.Time = t0.Add(time.Duration(m) * time.Minute)
		if _, err := s.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Purge(context.Background(), t0.Add(10*time.Minute), retentionActor)
	if err != nil || res.To != 2 {
		t.Errorf("purge = %+v, %v; want up to seq 2", res, err)
	}
}

func TestLegalHoldBlocksPurge(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	appendAt(t, s, t0, 5)
	if h, err := s.LegalHold(ctx); err != nil || h.On {
		t.Fatalf("initial hold = %+v, %v; want off", h, err)
	}
	ev, err := s.SetLegalHold(ctx, true, "case 2025-17", retentionActor)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Action != "retention.legal_hold" || ev.Details["on"] != true || ev.Reason != "case 2025-17" {
		t.Errorf("hold event %+v", ev)
	}
	h, err := s.LegalHold(ctx)
	if err != nil || !h.On || h.Reason != "case 2025-17" || h.By.Subject != "admin" || h.Event != ev.ID {
		t.Errorf("hold = %+v, %v", h, err)
	}
	if _, err := s.Purge(ctx, t0.Add(time.Hour), retentionActor); !errors.Is(err, ErrLegalHold) {
		t.Errorf("Purge under hold: %v, want ErrLegalHold", err)
	}
	if rep := mustVerify(t, dir); rep.Purged != 0 {
		t.Errorf("purged %d under a hold", rep.Purged)
	}
	if _, err := s.SetLegalHold(ctx, false, "case closed", retentionActor); err != nil {
		t.Fatal(err)
	}
	res, err := s.Purge(ctx, t0.Add(time.Hour), retentionActor)
	if err != nil || res.To != 5 {
		t.Errorf("Purge after release = %+v, %v; want up to seq 5", res, err)
	}
}

func TestRetentionRunsInBackground(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	appendAt(t, s, time.Now().Add(-48*time.Hour), 3)
	appendAt(t, s, time.Now(), 2)
	s.Close()
	s, err := Open(context.Background(), Config{Dir: dir, Retention: 24 * time.Hour, RetentionInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Purged < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, dir); rep.Purged != 3 {
		t.Errorf("background retention purged %d, want 3", rep.Purged)
	}
}

// triggerDB opens the store file with its triggers in place, as a careless
// operator with sqlite3 would.
func triggerDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestTriggersAllowOnlyRetention(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	appendAt(t, s, t0, 6)
	if _, err := s.Purge(ctx, t0.Add(3*time.Minute), retentionActor); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := triggerDB(t, dir)
	tests := []struct{ name, q string }{
		{"empty a record above the horizon", `UPDATE events SET record = X'' WHERE seq = 5`},
		{"rewrite a purged row's record", `UPDATE events SET record = X'7b7d' WHERE seq = 1`},
		{"change a purged row's hash", `UPDATE events SET hash = X'00' WHERE seq = 1`},
		{"change a record", `UPDATE events SET record = X'7b7d' WHERE seq = 6`},
		{"delete a purged row", `DELETE FROM events WHERE seq = 1`},
		{"lower the horizon", `UPDATE meta SET value = '1' WHERE key = 'purge_horizon'`},
		{"delete the horizon", `DELETE FROM meta WHERE key = 'purge_horizon'`},
		{"rewrite tree hashes", `UPDATE tree SET hashes = X'00' WHERE leaf = 0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.Exec(tt.q); err == nil {
				t.Errorf("%s: allowed", tt.q)
			}
		})
	}
	mustVerify(t, dir)
}

// Tampering after a purge is still detected, including tampering that
// imitates a purge.
func TestVerifyDetectsTamperingAfterPurge(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		want   ProblemKind
	}{
		{"modify a kept record", func(t *testing.T, db *sql.DB) {
			rec, _ := record(t, db, 7)
			mustExec(t, db, `UPDATE events SET record = ? WHERE seq = 7`, bytes.Replace(rec, []byte("alice"), []byte("mallo"), 1))
		}, ProblemModified},
		{"empty a kept record", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE events SET record = X'' WHERE seq = 7`)
		}, ProblemModified},
		{"empty a kept record after raising the stored horizon", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE meta SET value = '9' WHERE key = 'purge_horizon'`)
			mustExec(t, db, `UPDATE events SET record = X'' WHERE seq = 7`)
		}, ProblemModified},
		{"empty the retention event itself", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE events SET record = X'' WHERE action = 'retention.purged'`)
		}, ProblemModified},
		{"change the last purged row's hash", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE events SET hash = zeroblob(32) WHERE seq = 5`)
		}, ProblemModified},
		{"change a purged row's leaf hash", func(t *testing.T, db *sql.DB) {
			var blob []byte
			db.QueryRow(`SELECT hashes FROM tree WHERE leaf = 2`).Scan(&blob)
			blob[0] ^= 1
			mustExec(t, db, `UPDATE tree SET hashes = ? WHERE leaf = 2`, blob)
		}, ProblemModified},
		{"delete a purged row", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM events WHERE seq = 3`)
		}, ProblemDeleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(ctx, Config{Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			appendAt(t, s, t0, 10)
			if _, err := s.Purge(ctx, t0.Add(5*time.Minute), retentionActor); err != nil {
				t.Fatal(err)
			}
			s.Close()
			mustVerify(t, dir)
			tt.tamper(t, rawDB(t, dir))
			rep, err := Verify(ctx, dir, nil)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify = %v, want ErrTampered", err)
			}
			if !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == tt.want }) {
				t.Errorf("problems %v, want %s", rep.Problems, tt.want)
			}
		})
	}
}

// A version 1 store (unconditional update trigger) is migrated on Open.
func TestOpenMigratesSchemaV1(t *testing.T) {
	ctx := context.Background()
	dir := storeWith(t, 4)
	db := rawDB(t, dir)
	mustExec(t, db, `CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
		BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END`)
	mustExec(t, db, `UPDATE meta SET value = '1' WHERE key = 'schema_version'`)
	db.Close()

	s := openTest(t, dir)
	var v string
	if err := s.rdb.QueryRow(`SELECT value FROM meta WHERE key = 'schema_version'`).Scan(&v); err != nil || v != "2" {
		t.Errorf("schema version after open = %q, %v; want 2", v, err)
	}
	if res, err := s.Purge(ctx, time.Now().Add(time.Hour), retentionActor); err != nil || res.Count != 4 {
		t.Errorf("purge on a migrated store = %+v, %v; want 4 purged", res, err)
	}
	s.Close()
	mustVerify(t, dir)
}

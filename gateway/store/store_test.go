package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	b, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(b)
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestRequestRoundTripAndReopen(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t)
	now := time.Date(2026, 11, 25, 3, 14, 0, 0, time.UTC)
	req := Request{ID: "req_1", State: StatePending, Requester: Subject{ID: "iss|alice"}, Service: "checkout", Env: "prod",
		Duration: 15 * time.Minute, Reason: "INC-1", CreatedAt: now, Decision: Decision{ID: "dec_1", MaxDuration: time.Hour}}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutRequest(&req) }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s = New(b)
	defer s.Close()
	got, err := s.Request(ctx, "req_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Duration != 15*time.Minute || got.Decision.MaxDuration != time.Hour || !got.CreatedAt.Equal(now) {
		t.Errorf("got %+v, want duration 15m, max 1h, created %v", got, now)
	}
	if v, _ := b.SchemaVersion(ctx); v != len(migrations) {
		t.Errorf("schema version = %d, want %d", v, len(migrations))
	}
	if _, err := s.Request(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing request: err = %v, want ErrNotFound", err)
	}
}

func TestListFiltersAndPaging(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 25 {
		state := StatePending
		if i%5 == 0 {
			state = StateApproved
		}
		r := Request{ID: "req_" + string(rune('a'+i)), State: state, Requester: Subject{ID: "alice"}, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
		if err := s.Update(ctx, func(tx *Txn) error { return tx.PutRequest(&r) }); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	cursor := ""
	for {
		page, next, err := s.Requests(ctx, Query{State: StatePending, Limit: 7, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			seen = append(seen, r.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 20 {
		t.Fatalf("pending across pages = %d, want 20", len(seen))
	}
	if seen[0] != "req_y" || seen[len(seen)-1] != "req_b" {
		t.Errorf("order: first %s last %s, want newest first req_y .. req_b", seen[0], seen[len(seen)-1])
	}
	if _, _, err := s.Requests(ctx, Query{Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: err = %v, want ErrBadCursor", err)
	}
}

func TestUpdateIsAtomic(t *testing.T) {
	s, _ := openTest(t)
	checkUpdateIsAtomic(t, s)
}

func TestConcurrentApproversOnlyOneWins(t *testing.T) {
	s, _ := openTest(t)
	checkConcurrentApproversOnlyOneWins(t, s)
}

func TestSourceByTokenHashAndAllows(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	src := Source{ID: "src_1", TokenHash: "abc", Streams: []StreamRef{{Service: "checkout", Env: "prod"}}, CreatedAt: time.Now()}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutSource(&src) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.SourceByTokenHash(ctx, "abc")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Allows("checkout", "prod") || got.Allows("checkout", "staging") || got.Allows("billing", "prod") {
		t.Errorf("Allows wrong for %+v", got.Streams)
	}
	if _, err := s.SourceByTokenHash(ctx, "zzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
}

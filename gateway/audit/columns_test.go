package audit

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Every search column is a copy of its record; changing one (after dropping
// the triggers, as anyone with the file can) must be reported as modified,
// naming the row and the column.
func TestVerifyChecksEverySearchColumn(t *testing.T) {
	for _, tt := range []struct{ column, value string }{
		{"id", "'evt_other'"},
		{"time_ns", "time_ns + 1"},
		{"action", "'grant.revoked'"},
		{"outcome", "'denied'"},
		{"actor_subject", "'sub-mallory'"},
		{"actor_email", "'mallory@example.com'"},
		{"request_id", "'http-other'"},
		{"target_request_id", "'req-other'"},
		{"grant_id", "'grant-other'"},
		{"service", "'billing'"},
		{"env", "'staging'"},
	} {
		t.Run(tt.column, func(t *testing.T) {
			dir := storeWith(t, 10)
			mustExec(t, rawDB(t, dir), `UPDATE events SET `+tt.column+` = `+tt.value+` WHERE seq = 5`)
			rep, err := Verify(context.Background(), dir, nil)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify error = %v, want ErrTampered", err)
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("problems = %+v, want one", rep.Problems)
			}
			p := rep.Problems[0]
			if p.Kind != ProblemModified || p.Seq != 5 || !strings.Contains(p.Detail, "column "+tt.column+" ") {
				t.Errorf("problem = %+v, want modified at seq 5 naming column %s", p, tt.column)
			}
		})
	}
}

func TestVerifyChecksCheckpointColumns(t *testing.T) {
	for _, tt := range []struct{ name, set, want string }{
		{"size", "size = size + 1", "column size"},
		{"time", "time_ns = time_ns - 1", "column time_ns"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := storeWith(t, 3)
			mustExec(t, rawDB(t, dir), `UPDATE checkpoints SET `+tt.set+` WHERE id = 1`)
			rep, err := Verify(context.Background(), dir, nil)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify error = %v, want ErrTampered", err)
			}
			if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Detail, "checkpoint 1: "+tt.want) {
				t.Errorf("problems = %+v, want one naming checkpoint 1 and its %s", rep.Problems, tt.want)
			}
		})
	}
}

// Search shows what the record says: a column changed to match a query
// cannot make an event appear under it, and a changed column never changes
// what is shown.
func TestSearchColumnsOnlyNarrow(t *testing.T) {
	ctx := context.Background()
	dir := storeWith(t, 10)
	db := rawDB(t, dir)
	mustExec(t, db, `UPDATE events SET action = 'grant.revoked', actor_email = 'mallory@example.com' WHERE seq = 5`)
	db.Close()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, q := range []Query{{Action: "grant.revoked"}, {Actor: "mallory@example.com"}} {
		page, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 0 {
			t.Errorf("Search(%+v) = %d events (first %s by %s), want none: the record says otherwise",
				q, len(page.Items), page.Items[0].Action, page.Items[0].Actor.Email)
		}
	}
}

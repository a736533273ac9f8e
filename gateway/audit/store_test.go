package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testEvent(i int) Event {
	users := []string{"alice", "bob", "carol"}
	u := users[i%len(users)]
	actions := []string{"auth.login", "access.requested", "grant.issued", "stream.opened"}
	outcomes := []string{OutcomeSuccess, OutcomeDenied}
	return Event{
		Action: actions[i%len(actions)],
		Actor: Actor{Kind: ActorUser, Issuer: "https://idp.example", Subject: "sub-" + u,
			Email: u + "@example.com", Name: u, Groups: []string{"eng"}},
		SourceAddr: "192.0.2.7:5555",
		UserAgent:  "test",
		RequestID:  fmt.Sprintf("http-%d", i),
		Target: Target{RequestID: fmt.Sprintf("req-%d", i%5), GrantID: fmt.Sprintf("grant-%d", i%7),
			Service: []string{"checkout", "search"}[i%2], Env: "prod"},
		Outcome: outcomes[i%len(outcomes)],
		Reason:  "because <test> & \"quotes\"",
		Details: map[string]any{"i": i, "lines": 10, "note": "x"},
	}
}

func appendN(t testing.TB, s *Store, n int) []Event {
	t.Helper()
	out := make([]Event, n)
	for i := range n {
		ev, err := s.Append(context.Background(), testEvent(i))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		out[i] = ev
	}
	return out
}

func TestAppendAssignsChain(t *testing.T) {
	s := openTest(t, t.TempDir())
	evs := appendN(t, s, 3)
	prev := zeroHex
	for i, ev := range evs {
		if got, want := ev.Seq, int64(i+1); got != want {
			t.Errorf("event %d: seq = %d, want %d", i, got, want)
		}
		if ev.PrevHash != prev {
			t.Errorf("event %d: prev_hash = %s, want %s", i, ev.PrevHash, prev)
		}
		if len(ev.ID) != 30 || ev.ID[:4] != "evt_" {
			t.Errorf("event %d: id = %q, want evt_ + 26 chars", i, ev.ID)
		}
		if ev.Time.IsZero() || ev.Schema != SchemaVersion || len(ev.Hash) != 64 {
			t.Errorf("event %d: time %v schema %d hash %q not assigned", i, ev.Time, ev.Schema, ev.Hash)
		}
		prev = ev.Hash
	}
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

func TestAppendRejectsInvalid(t *testing.T) {
	s := openTest(t, t.TempDir())
	ok := testEvent(0)
	tests := []struct {
		name string
		mod  func(*Event)
	}{
		{"no action", func(e *Event) { e.Action = "" }},
		{"bad actor kind", func(e *Event) { e.Actor.Kind = "robot" }},
		{"bad outcome", func(e *Event) { e.Outcome = "maybe" }},
		{"unencodable details", func(e *Event) { e.Details = map[string]any{"c": make(chan int)} }},
		{"oversized", func(e *Event) { e.Reason = strings.Repeat("x", MaxRecordBytes) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := ok
			tt.mod(&ev)
			if _, err := s.Append(context.Background(), ev); !errors.Is(err, ErrInvalid) {
				t.Errorf("Append error = %v, want ErrInvalid", err)
			}
		})
	}
	if got := appendN(t, s, 1)[0].Seq; got != 1 {
		t.Errorf("seq after rejected appends = %d, want 1", got)
	}
}

func TestGet(t *testing.T) {
	s := openTest(t, t.TempDir())
	evs := appendN(t, s, 5)
	got, err := s.Get(context.Background(), evs[2].ID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := evs[2]
	if got.ID != want.ID || got.Seq != want.Seq || got.Hash != want.Hash || got.PrevHash != want.PrevHash ||
		!got.Time.Equal(want.Time) || got.Reason != want.Reason || got.Actor.Email != want.Actor.Email ||
		got.Target != want.Target || fmt.Sprint(got.Details) != fmt.Sprint(want.Details) {
		t.Errorf("Get = %+v, want %+v", got, want)
	}
	if _, err := s.Get(context.Background(), "evt_nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(unknown) error = %v, want ErrNotFound", err)
	}
}

func TestSearchFilters(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := openTest(t, t.TempDir())
	for i := range 40 {
		ev := testEvent(i)
		ev.Time = base.Add(time.Duration(i) * time.Minute)
		if _, err := s.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	count := func(pred func(i int, e Event) bool) []int64 {
		var seqs []int64
		for i := 39; i >= 0; i-- {
			e := testEvent(i)
			if pred(i, e) {
				seqs = append(seqs, int64(i+1))
			}
		}
		return seqs
	}
	tests := []struct {
		name string
		q    Query
		want []int64
	}{
		{"all", Query{}, count(func(int, Event) bool { return true })},
		{"actor by subject", Query{Actor: "sub-bob"}, count(func(_ int, e Event) bool { return e.Actor.Subject == "sub-bob" })},
		{"actor by email", Query{Actor: "carol@example.com"}, count(func(_ int, e Event) bool { return e.Actor.Subject == "sub-carol" })},
		{"action exact", Query{Action: "grant.issued"}, count(func(_ int, e Event) bool { return e.Action == "grant.issued" })},
		{"action prefix", Query{Action: "access.*"}, count(func(_ int, e Event) bool { return e.Action == "access.requested" })},
		{"action prefix no match", Query{Action: "acc.*"}, nil},
		{"outcome", Query{Outcome: OutcomeDenied}, count(func(_ int, e Event) bool { return e.Outcome == OutcomeDenied })},
		{"grant", Query{GrantID: "grant-3"}, count(func(_ int, e Event) bool { return e.Target.GrantID == "grant-3" })},
		{"access request", Query{RequestID: "req-4"}, count(func(_ int, e Event) bool { return e.Target.RequestID == "req-4" })},
		{"http request", Query{RequestID: "http-17"}, []int64{18}},
		{"service and env", Query{Service: "search", Env: "prod"}, count(func(_ int, e Event) bool { return e.Target.Service == "search" })},
		{"env none", Query{Env: "staging"}, nil},
		{"time window", Query{Since: base.Add(10 * time.Minute), Until: base.Add(13 * time.Minute)}, []int64{13, 12, 11}},
		{"combined", Query{Actor: "sub-alice", Outcome: OutcomeSuccess, Action: "auth.*"},
			count(func(_ int, e Event) bool {
				return e.Actor.Subject == "sub-alice" && e.Outcome == OutcomeSuccess && e.Action == "auth.login"
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			page, err := s.Search(context.Background(), tt.q)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			var got []int64
			for _, e := range page.Items {
				got = append(got, e.Seq)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("seqs = %v, want %v", got, tt.want)
			}
			if page.NextCursor != "" {
				t.Errorf("NextCursor = %q, want empty (single page)", page.NextCursor)
			}
		})
	}
}

func TestSearchPagination(t *testing.T) {
	s := openTest(t, t.TempDir())
	appendN(t, s, 25)
	var got []int64
	q := Query{Limit: 10}
	pages := 0
	for {
		page, err := s.Search(context.Background(), q)
		if err != nil {
			t.Fatalf("Search: %v", err)
		}
		pages++
		for _, e := range page.Items {
			got = append(got, e.Seq)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
	for i, seq := range got {
		if want := int64(25 - i); seq != want {
			t.Fatalf("item %d: seq %d, want %d (all: %v)", i, seq, want, got)
		}
	}
	if len(got) != 25 {
		t.Errorf("items = %d, want 25", len(got))
	}
	if _, err := s.Search(context.Background(), Query{Cursor: "garbage!"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad cursor error = %v, want ErrInvalid", err)
	}
}

func TestSearchLimitDefaults(t *testing.T) {
	tests := []struct{ in, want int }{{0, 100}, {-3, 100}, {5, 5}, {1000, 1000}, {5000, 1000}}
	for _, tt := range tests {
		if got := (Query{Limit: tt.in}).limit(); got != tt.want {
			t.Errorf("limit(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestConcurrentAppendsAreGapless(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	const workers, per = 16, 50
	var wg sync.WaitGroup
	seqs := make(chan int64, workers*per)
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				ev, err := s.Append(context.Background(), testEvent(w*per+i))
				if err != nil {
					errs <- err
					return
				}
				seqs <- ev.Seq
			}
		})
	}
	wg.Wait()
	close(seqs)
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}
	seen := map[int64]bool{}
	for q := range seqs {
		if seen[q] {
			t.Fatalf("seq %d acknowledged twice", q)
		}
		seen[q] = true
	}
	for q := int64(1); q <= workers*per; q++ {
		if !seen[q] {
			t.Fatalf("seq %d missing", q)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(context.Background(), dir, nil)
	if err != nil {
		t.Fatalf("Verify: %v (%+v)", err, rep.Problems)
	}
	if rep.Events != workers*per {
		t.Errorf("verified events = %d, want %d", rep.Events, workers*per)
	}
}

func TestReopenContinuesChain(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	first := appendN(t, s, 7)
	key := s.VerifierKey()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openTest(t, dir)
	if s2.VerifierKey() != key {
		t.Errorf("key changed across reopen: %s vs %s", s2.VerifierKey(), key)
	}
	ev, err := s2.Append(context.Background(), testEvent(100))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 8 || ev.PrevHash != first[6].Hash {
		t.Errorf("after reopen: seq %d prev %s, want 8 and %s", ev.Seq, ev.PrevHash, first[6].Hash)
	}
	if _, err := Verify(context.Background(), dir, nil); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

func TestAppendAfterClose(t *testing.T) {
	s := openTest(t, t.TempDir())
	s.Close()
	if _, err := s.Append(context.Background(), testEvent(0)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append after Close error = %v, want ErrUnavailable", err)
	}
}

// The JSON field names are a public API contract.
func TestEventJSONFieldNames(t *testing.T) {
	ev := testEvent(1)
	ev.ID, ev.Seq, ev.Time, ev.PrevHash, ev.Hash, ev.Schema = "evt_x", 3, time.Unix(1, 0), "aa", "bb", 1
	ev.Actor.ID, ev.Target.ReviewID, ev.Target.SourceID, ev.DecisionID, ev.PolicyRevision = "src", "rev", "src", "dec", "pol"
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var sub struct{ Actor, Target map[string]any }
	json.Unmarshal(b, &sub)
	keys := func(m map[string]json.RawMessage) []string { return slices.Sorted(maps.Keys(m)) }
	want := []string{"action", "actor", "decision_id", "details", "hash", "id", "outcome", "policy_revision",
		"prev_hash", "reason", "request_id", "schema", "seq", "source_addr", "target", "time", "user_agent"}
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("event keys = %v, want %v", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(sub.Actor)), []string{"email", "groups", "id", "issuer", "kind", "name", "subject"}; !slices.Equal(got, want) {
		t.Errorf("actor keys = %v, want %v", got, want)
	}
	if got, want := slices.Sorted(maps.Keys(sub.Target)), []string{"env", "grant_id", "request_id", "review_id", "service", "source_id"}; !slices.Equal(got, want) {
		t.Errorf("target keys = %v, want %v", got, want)
	}
}

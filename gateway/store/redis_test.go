package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// openRedisTest returns a Store on a fresh redis-server (or REDIS_URL with a
// unique prefix) and the server, nil with REDIS_URL.
func openRedisTest(t *testing.T) (*Store, *redistest.Server) {
	t.Helper()
	u, srv := redistest.FromEnvOrStart(t)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	opt.DialTimeout = 500 * time.Millisecond
	c := redis.NewClient(opt)
	t.Cleanup(func() { c.Close() })
	b, err := NewRedis(RedisConfig{Client: c, Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	return New(b), srv
}

func TestRedisRequestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, _ := openRedisTest(t)
	now := time.Date(2026, 11, 25, 3, 14, 0, 123, time.UTC)
	req := Request{ID: "req_1", State: StatePending, Requester: Subject{ID: "iss|alice"}, Service: "checkout", Env: "prod",
		Duration: 15 * time.Minute, Reason: "INC-1", CreatedAt: now, Decision: Decision{ID: "dec_1", MaxDuration: time.Hour}}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutRequest(&req) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.Request(ctx, "req_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Duration != 15*time.Minute || got.Decision.MaxDuration != time.Hour || !got.CreatedAt.Equal(now) {
		t.Errorf("got %+v, want duration 15m, max 1h, created %v", got, now)
	}
	if _, err := s.Request(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing request: err = %v, want ErrNotFound", err)
	}
	// Reads inside a transaction see the transaction's own writes.
	err = s.Update(ctx, func(tx *Txn) error {
		r, err := tx.Request("req_1")
		if err != nil {
			return err
		}
		r.State = StateApproved
		if err := tx.PutRequest(&r); err != nil {
			return err
		}
		again, err := tx.Request("req_1")
		if err != nil {
			return err
		}
		if again.State != StateApproved {
			t.Errorf("read after write in txn: state %q, want approved", again.State)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRedisListFiltersAndPaging(t *testing.T) {
	ctx := context.Background()
	s, _ := openRedisTest(t)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 25 {
		state := StatePending
		if i%5 == 0 {
			state = StateApproved
		}
		env := "prod"
		if i%2 == 0 {
			env = "staging"
		}
		r := Request{ID: "req_" + string(rune('a'+i)), State: state, Requester: Subject{ID: "alice"}, Service: "checkout",
			Env: env, CreatedAt: base.Add(time.Duration(i) * time.Minute)}
		if err := s.Update(ctx, func(tx *Txn) error { return tx.PutRequest(&r) }); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name        string
		q           Query
		count       int
		first, last string
	}{
		{"pending", Query{State: StatePending, Limit: 7}, 20, "req_y", "req_b"},
		{"all", Query{Limit: 4}, 25, "req_y", "req_a"},
		{"owner", Query{Owner: "alice", Limit: 10}, 25, "req_y", "req_a"},
		{"owner and env", Query{Owner: "alice", Env: "prod", Limit: 3}, 12, "req_x", "req_b"},
		{"state and env", Query{State: StateApproved, Env: "staging"}, 3, "req_u", "req_a"},
		{"nobody", Query{Owner: "bob"}, 0, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen []string
			q := tt.q
			for pages := 0; ; pages++ {
				page, next, err := s.Requests(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > q.Limit && q.Limit > 0 {
					t.Fatalf("page of %d, limit %d", len(page), q.Limit)
				}
				for _, r := range page {
					seen = append(seen, r.ID)
				}
				if next == "" {
					break
				}
				if pages > 30 {
					t.Fatal("paging does not end")
				}
				q.Cursor = next
			}
			if len(seen) != tt.count {
				t.Fatalf("got %d records %v, want %d", len(seen), seen, tt.count)
			}
			if tt.count > 0 && (seen[0] != tt.first || seen[len(seen)-1] != tt.last) {
				t.Errorf("order: first %s last %s, want newest first %s .. %s", seen[0], seen[len(seen)-1], tt.first, tt.last)
			}
		})
	}
	if _, _, err := s.Requests(ctx, Query{Cursor: "!!"}); !errors.Is(err, ErrBadCursor) {
		t.Errorf("bad cursor: err = %v, want ErrBadCursor", err)
	}
}

func TestRedisStateChangeMovesIndexAndKeepsCreated(t *testing.T) {
	ctx := context.Background()
	s, _ := openRedisTest(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g := Grant{ID: "g1", State: GrantActive, Holder: Subject{ID: "alice"}, IssuedAt: t0}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutGrant(&g) }); err != nil {
		t.Fatal(err)
	}
	g.State = GrantRevoked
	g.IssuedAt = t0.Add(time.Hour) // created is set once, as in SQLite
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutGrant(&g) }); err != nil {
		t.Fatal(err)
	}
	active, _, err := s.Grants(ctx, Query{State: GrantActive})
	if err != nil || len(active) != 0 {
		t.Errorf("active grants = %v (err %v), want none after revoke", active, err)
	}
	revoked, _, err := s.Grants(ctx, Query{State: GrantRevoked})
	if err != nil || len(revoked) != 1 {
		t.Fatalf("revoked grants = %v (err %v), want g1", revoked, err)
	}
	rec, err := s.b.Get(ctx, KindGrant, "g1")
	if err != nil || !rec.Created.Equal(t0) {
		t.Errorf("created = %v (err %v), want the first %v", rec.Created, err, t0)
	}
}

func TestRedisUpdateIsAtomic(t *testing.T) {
	s, _ := openRedisTest(t)
	checkUpdateIsAtomic(t, s)
}

func TestRedisConcurrentApproversOnlyOneWins(t *testing.T) {
	s, _ := openRedisTest(t)
	checkConcurrentApproversOnlyOneWins(t, s)
}

// TestRedisCounterNoLostUpdates checks that fn re-runs on a lost race: every
// increment lands exactly once.
func TestRedisCounterNoLostUpdates(t *testing.T) {
	ctx := context.Background()
	s, _ := openRedisTest(t)
	src := Source{ID: "src", Name: "0", CreatedAt: time.Now()}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutSource(&src) }); err != nil {
		t.Fatal(err)
	}
	const n = 40
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx *Txn) error {
				cur, err := tx.Source("src")
				if err != nil {
					return err
				}
				var v int
				fmt.Sscan(cur.Name, &v)
				cur.Name = fmt.Sprint(v + 1)
				return tx.PutSource(&cur)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Source(ctx, "src")
	if err != nil || got.Name != fmt.Sprint(n) {
		t.Errorf("counter = %q (err %v), want %d", got.Name, err, n)
	}
}

func TestRedisSourceByTokenHash(t *testing.T) {
	ctx := context.Background()
	s, _ := openRedisTest(t)
	src := Source{ID: "src_1", TokenHash: "abc", Streams: []StreamRef{{Service: "checkout", Env: "prod"}}, CreatedAt: time.Now()}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutSource(&src) }); err != nil {
		t.Fatal(err)
	}
	got, err := s.SourceByTokenHash(ctx, "abc")
	if err != nil || got.ID != "src_1" {
		t.Fatalf("by hash: %+v, %v", got, err)
	}
	if _, err := s.SourceByTokenHash(ctx, "zzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
}

func TestRedisUnavailableAndRecovery(t *testing.T) {
	ctx := context.Background()
	s, srv := openRedisTest(t)
	if srv == nil {
		t.Skip("uses its own redis-server (REDIS_URL is set)")
	}
	g := Grant{ID: "g1", State: GrantActive, IssuedAt: time.Now()}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutGrant(&g) }); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for name, err := range map[string]error{
		"ping":   s.Ping(ctx),
		"get":    func() error { _, err := s.Grant(ctx, "g1"); return err }(),
		"list":   func() error { _, _, err := s.Grants(ctx, Query{}); return err }(),
		"update": s.Update(ctx, func(tx *Txn) error { return tx.PutGrant(&g) }),
	} {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Redis down: err = %v, want ErrUnavailable", name, err)
		}
	}
	srv.Restart()
	got, err := s.Grant(ctx, "g1")
	if err != nil || got.State != GrantActive {
		t.Errorf("after restart: %+v, %v; want the acknowledged grant back (appendfsync always)", got, err)
	}
}

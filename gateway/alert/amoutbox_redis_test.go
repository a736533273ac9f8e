package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// amReceiver is an Alertmanager stand-in that counts, per replica (the
// X-Replica header each sender's client adds), the alerts of every POST it
// answered 200 to, by loggate alert id. answer, if set, decides a POST's
// status first (it may block).
type amReceiver struct {
	*httptest.Server
	mu        sync.Mutex
	delivered map[string][]string // replica -> alert ids, in order
	bodies    map[string]amAlert  // alert id -> last body delivered
	posts     map[string]int      // replica -> POSTs received
	answer    func(r *http.Request, ids []string) int
}

func newAMReceiver(t *testing.T) *amReceiver {
	rc := &amReceiver{delivered: map[string][]string{}, bodies: map[string]amAlert{}, posts: map[string]int{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var list []amAlert
		if err := json.NewDecoder(r.Body).Decode(&list); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var ids []string
		for _, a := range list {
			ids = append(ids, a.Annotations["loggate_alert_id"])
		}
		replica := r.Header.Get("X-Replica")
		rc.mu.Lock()
		rc.posts[replica]++
		answer := rc.answer
		rc.mu.Unlock()
		if answer != nil {
			if code := answer(r, ids); code != http.StatusOK {
				w.WriteHeader(code)
				return
			}
		}
		rc.mu.Lock()
		rc.delivered[replica] = append(rc.delivered[replica], ids...)
		for i, a := range list {
			rc.bodies[ids[i]] = a
		}
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *amReceiver) got(replica string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.delivered[replica])
}

func (rc *amReceiver) postsBy(replica string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.posts[replica]
}

// replicaHeader marks a sender's requests with its name.
type replicaHeader string

func (h replicaHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Replica", string(h))
	return http.DefaultTransport.RoundTrip(r)
}

func redisSender(t *testing.T, url, replica string, cfg AlertmanagerConfig) *Alertmanager {
	t.Helper()
	cfg.URLs = []string{url}
	cfg.Client = &http.Client{Transport: replicaHeader(replica), Timeout: 10 * time.Second}
	m, err := NewAlertmanager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func firingAlert(id string, at time.Time) Alert {
	return Alert{ID: id, Rule: "r", State: StateFiring, StartedAt: &at, UpdatedAt: at}
}

// TestRedisOutboxTwoSendersDeliverEachAlertOnce: two replicas' senders
// share one outbox in Redis and both run; every alert queued reaches
// Alertmanager once, delivered by one of them.
func TestRedisOutboxTwoSendersDeliverEachAlertOnce(t *testing.T) {
	rs := redistest.Start(t)
	c, prefix := rs.Client(), redistest.Prefix(t)
	rc := newAMReceiver(t)
	rc.answer = func(*http.Request, []string) int {
		time.Sleep(5 * time.Millisecond) // let the other sender's loop run meanwhile
		return http.StatusOK
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := redisSender(t, rc.URL, "a", AlertmanagerConfig{Redis: c, RedisPrefix: prefix})
	b := redisSender(t, rc.URL, "b", AlertmanagerConfig{Redis: c, RedisPrefix: prefix})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { b.Run(ctx) })
	const n = 30
	now := time.Now()
	for i := range n {
		m := a
		if i%2 == 1 {
			m = b // the leader, and so the replica queueing, may change
		}
		if err := m.Enqueue(ctx, firingAlert(fmt.Sprint("alt_", i), now)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err := a.Pending(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts still queued", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	seen := map[string]int{}
	for _, id := range append(rc.got("a"), rc.got("b")...) {
		seen[id]++
	}
	if len(seen) != n {
		t.Errorf("distinct alerts delivered = %d, want %d", len(seen), n)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("alert %s delivered %d times, want once", id, k)
		}
	}
	if got := a.Delivered() + b.Delivered(); got != n {
		t.Errorf("delivered counters = %d, want %d", got, n)
	}
}

// TestRedisOutboxDeadSendersRowsTakenOver: replica A delivers part of the
// backlog, then dies while posting the rest; replica B does not touch what
// A holds (not even a newer state of it) until A's claim lease has ended,
// then delivers the rest, with the newest state.
func TestRedisOutboxDeadSendersRowsTakenOver(t *testing.T) {
	rs := redistest.Start(t)
	c, prefix := rs.Client(), redistest.Prefix(t)
	rc := newAMReceiver(t)
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	cfg := AlertmanagerConfig{Redis: c, RedisPrefix: prefix, ClaimLease: 30 * time.Second, Now: clock.Now}
	a := redisSender(t, rc.URL, "a", cfg)
	b := redisSender(t, rc.URL, "b", cfg)
	ctx := context.Background()
	start := clock.Now()
	for _, id := range []string{"alt_0", "alt_1"} {
		if err := a.Enqueue(ctx, firingAlert(id, start)); err != nil {
			t.Fatal(err)
		}
	}
	a.deliverDue(ctx)
	b.deliverDue(ctx)
	if got := rc.got("a"); !slices.Equal(got, []string{"alt_0", "alt_1"}) || rc.postsBy("b") != 0 {
		t.Fatalf("delivered by a %v, posts by b %d; want alt_0 and alt_1 by a alone", got, rc.postsBy("b"))
	}

	// The rest of the backlog: A takes it and dies while posting it.
	for _, id := range []string{"alt_2", "alt_3"} {
		if err := a.Enqueue(ctx, firingAlert(id, start)); err != nil {
			t.Fatal(err)
		}
	}
	arrived := make(chan struct{})
	rc.mu.Lock()
	rc.answer = func(r *http.Request, _ []string) int {
		if r.Header.Get("X-Replica") == "a" {
			close(arrived)
			<-r.Context().Done() // A dies with the post in flight
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	rc.mu.Unlock()
	ctxA, killA := context.WithCancel(ctx)
	deadA := make(chan struct{})
	go func() { defer close(deadA); a.deliverDue(ctxA) }()
	<-arrived
	// While A holds the rows, B takes none of them, nor a newer state of
	// one (alt_2 resolved meanwhile).
	resolved := firingAlert("alt_2", start)
	end := start.Add(5 * time.Second)
	resolved.State, resolved.EndedAt = StateResolved, &end
	if err := b.Enqueue(ctx, resolved); err != nil {
		t.Fatal(err)
	}
	b.deliverDue(ctx)
	if n := rc.postsBy("b"); n != 0 {
		t.Fatalf("b posted %d times while a held the rows", n)
	}
	killA()
	<-deadA
	clock.Advance(29 * time.Second)
	b.deliverDue(ctx)
	if n := rc.postsBy("b"); n != 0 {
		t.Fatalf("b posted %d times before a's claim lease ended", n)
	}
	clock.Advance(2 * time.Second)
	b.deliverDue(ctx)
	if got := rc.got("b"); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"alt_2", "alt_3"}) {
		t.Fatalf("delivered by b = %v, want the rest of the backlog (alt_2, alt_3)", got)
	}
	if got := rc.got("a"); len(got) != 2 {
		t.Errorf("delivered by a = %v, want only the first part", got)
	}
	rc.mu.Lock()
	last := rc.bodies["alt_2"]
	rc.mu.Unlock()
	if !last.EndsAt.Equal(end) {
		t.Errorf("alt_2 delivered with endsAt %v, want the resolved state's %v", last.EndsAt, end)
	}
	if p, err := b.Pending(ctx); err != nil || p != 0 {
		t.Errorf("pending = %d, %v; want 0", p, err)
	}
	b.deliverDue(ctx)
	if n := rc.postsBy("b"); n != 1 {
		t.Errorf("b posted %d times, want once", n)
	}
}

// TestRedisOutboxRetriesWithBackoffAcrossARestart: a failed post is
// retried after its backoff, by a sender started afresh on the same Redis.
func TestRedisOutboxRetriesWithBackoffAcrossARestart(t *testing.T) {
	rs := redistest.Start(t)
	c, prefix := rs.Client(), redistest.Prefix(t)
	rc := newAMReceiver(t)
	var down sync.Mutex
	isDown := true
	rc.answer = func(*http.Request, []string) int {
		down.Lock()
		defer down.Unlock()
		if isDown {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	clock := &fakeClock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	cfg := AlertmanagerConfig{Redis: c, RedisPrefix: prefix, Now: clock.Now, MaxPending: 2}
	ctx := context.Background()
	a := redisSender(t, rc.URL, "a", cfg)
	for i := range 3 {
		if err := a.Enqueue(ctx, firingAlert(fmt.Sprint("alt_", i), clock.Now())); err != nil {
			t.Fatal(err)
		}
	}
	if a.Dropped() != 1 {
		t.Errorf("dropped = %d, want 1 (outbox bound 2)", a.Dropped())
	}
	a.deliverDue(ctx)
	if a.Failed() != 1 || len(rc.got("a")) != 0 {
		t.Fatalf("failed = %d, delivered %v", a.Failed(), rc.got("a"))
	}
	// A restart: a new sender (a new consumer) finds the rows, due after
	// the backoff.
	b := redisSender(t, rc.URL, "b", cfg)
	down.Lock()
	isDown = false
	down.Unlock()
	b.deliverDue(ctx)
	if len(rc.got("b")) != 0 {
		t.Fatal("retried before the backoff")
	}
	clock.Advance(2 * time.Second)
	b.deliverDue(ctx)
	if got := rc.got("b"); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"alt_0", "alt_1"}) {
		t.Fatalf("delivered after the restart = %v, want alt_0 and alt_1", got)
	}
	if p, _ := b.Pending(ctx); p != 0 {
		t.Errorf("pending = %d after delivery", p)
	}
}

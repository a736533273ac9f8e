package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// redisQuick is quick with the outbox on a throwaway redis-server (the test
// skips loudly without one, and fails with CI=true).
func redisQuick(t *testing.T, c *redis.Client, prefix string, targets ...Target) Config {
	cfg := quick("", targets...)
	cfg.Redis, cfg.RedisPrefix, cfg.RedisClaimIdle = c, prefix, 400*time.Millisecond
	return cfg
}

func TestRedisTwoNotifiersDeliverEachMessageOnce(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	prefix := redistest.Prefix(t)
	rc := newReceiver(t)
	var mu sync.Mutex
	seen := map[string]int{}
	rc.setAnswer(func(_ int, r *http.Request) (int, map[string]string) {
		time.Sleep(5 * time.Millisecond) // let the other replica's loop run meanwhile
		mu.Lock()
		seen[r.Header.Get("webhook-id")]++
		mu.Unlock()
		return http.StatusOK, nil
	})
	target := Target{URL: rc.URL, Secret: "s3cret"}
	a := open(t, redisQuick(t, c, prefix, target))
	b := open(t, redisQuick(t, c, prefix, target))
	const perReplica = 30
	for i := range perReplica {
		for _, n := range []*Notifier{a, b} {
			if err := n.Notify(context.Background(), KindRequestCreated, requestPayload(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 2 * perReplica {
		rc.next(t)
	}
	// Longer than the claim idle time: a wrongly claimed live entry would
	// be delivered a second time within it.
	rc.none(t, time.Second)
	mu.Lock()
	defer mu.Unlock()
	if got, want := len(seen), 2*perReplica; got != want {
		t.Errorf("distinct messages delivered = %d, want %d", got, want)
	}
	for id, k := range seen {
		if k != 1 {
			t.Errorf("message %s delivered %d times, want once", id, k)
		}
	}
	if p, err := a.Pending(context.Background()); err != nil || p != 0 {
		t.Errorf("Pending = %d, %v; want 0", p, err)
	}
}

func TestRedisDeadConsumersMessageIsClaimed(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	prefix := redistest.Prefix(t)
	rc := newReceiver(t)
	var mu sync.Mutex
	var ids []string
	release := make(chan struct{})
	arrived := make(chan struct{})
	rc.setAnswer(func(n int, r *http.Request) (int, map[string]string) {
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		mu.Unlock()
		if n == 1 {
			close(arrived)
			<-release // replica A dies while this attempt is in flight
			return http.StatusServiceUnavailable, nil
		}
		return http.StatusOK, nil
	})
	target := Target{URL: rc.URL, Secret: "s3cret"}
	cfgA := redisQuick(t, c, prefix, target)
	cfgA.DrainTimeout = time.Millisecond
	atA := newAttempts()
	cfgA.OnAttempt = atA.hook
	a, err := New(context.Background(), cfgA)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Notify(context.Background(), KindBreakGlass, requestPayload("fire")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("replica A made no attempt")
	}
	if err := a.Close(); err != nil { // aborts the attempt: no ack, no retry time
		t.Fatal(err)
	}
	close(release)
	if got := atA.list(); len(got) != 0 {
		t.Errorf("replica A recorded attempts %q, want none (aborted)", got)
	}
	pend, err := c.XPending(context.Background(), prefix+"notify:outbox", redisGroup).Result()
	if err != nil || pend.Count != 1 {
		t.Fatalf("after A died: pending = %+v, %v; want one entry held by A", pend, err)
	}
	// Replica B claims it once it has been idle for the claim time.
	atB := newAttempts()
	cfgB := redisQuick(t, c, prefix, target)
	cfgB.OnAttempt = atB.hook
	start := time.Now()
	open(t, cfgB)
	rc.next(t)
	atB.wait(t, KindBreakGlass+" "+OutcomeDelivered)
	if waited := time.Since(start); waited > 10*time.Second {
		t.Errorf("claimed after %v", waited)
	}
	mu.Lock()
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("webhook-ids = %q, want the same id on both attempts", ids)
	}
	mu.Unlock()
	rc.none(t, 800*time.Millisecond)
	if got, err := c.XLen(context.Background(), prefix+"notify:outbox").Result(); err != nil || got != 0 {
		t.Errorf("stream length = %d, %v; want 0 after delivery", got, err)
	}
}

func TestRedisRetryAfterServerError(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	prefix := redistest.Prefix(t)
	rc := newReceiver(t)
	rc.setAnswer(func(n int, r *http.Request) (int, map[string]string) {
		if n <= 2 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	at := newAttempts()
	cfg := redisQuick(t, c, prefix, Target{URL: rc.URL})
	cfg.OnAttempt = at.hook
	n := open(t, cfg)
	if err := n.Notify(context.Background(), KindRequestApproved, requestPayload("x")); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	at.wait(t, "request.approved delivered")
	want := []string{"request.approved retrying", "request.approved retrying", "request.approved delivered"}
	if got := at.list(); !slices.Equal(got, want) {
		t.Errorf("attempts = %q, want %q", got, want)
	}
	var ev envelope
	if err := json.Unmarshal(got.Body, &ev); err != nil || ev.Type != KindRequestApproved {
		t.Errorf("body = %s (%v), want a request.approved envelope", got.Body, err)
	}
	if p, err := n.Pending(context.Background()); err != nil || p != 0 {
		t.Errorf("Pending = %d, %v; want 0", p, err)
	}
	if h, err := c.HLen(context.Background(), prefix+"notify:attempts").Result(); err != nil || h != 0 {
		t.Errorf("attempt counters left = %d, %v; want 0", h, err)
	}
}

func TestRedisAbandonedAfterMaxAge(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	prefix := redistest.Prefix(t)
	rc := newReceiver(t)
	rc.setAnswer(func(int, *http.Request) (int, map[string]string) { return http.StatusBadGateway, nil })
	at := newAttempts()
	cfg := redisQuick(t, c, prefix, Target{URL: rc.URL, Secret: "s3cret"})
	cfg.OnAttempt, cfg.MaxAge = at.hook, 50*time.Millisecond
	n := open(t, cfg)
	if err := n.Notify(context.Background(), KindGrantRevoked, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	at.wait(t, KindGrantRevoked+" "+OutcomeAbandoned)
	if p, err := n.Pending(context.Background()); err != nil || p != 0 {
		t.Errorf("Pending = %d, %v; want 0", p, err)
	}
	recs, err := c.HVals(context.Background(), prefix+"notify:abandoned").Result()
	if err != nil || len(recs) != 1 {
		t.Fatalf("abandoned = %q, %v; want one record", recs, err)
	}
	for _, bad := range []string{rc.URL, "s3cret"} {
		if strings.Contains(recs[0], bad) {
			t.Errorf("abandoned record %s holds %q", recs[0], bad)
		}
	}
}

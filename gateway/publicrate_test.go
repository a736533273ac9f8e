package gateway

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/api"
)

// TestPublicAuditRateLimit floods the unauthenticated audit endpoints from
// one address over HTTP: the bucket's worth are answered, then 429 with
// Retry-After and a JSON error, on every public audit route alike (one
// bucket per client), while signed-in routes are not limited by it.
func TestPublicAuditRateLimit(t *testing.T) {
	const burst = 4
	h := newHarnessWith(t, func(c *Config) {
		c.Limits.PublicAuditBurst = burst
		c.Limits.PublicAuditRate = 1.0 / 3600 // no refill within the test
	})
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := http.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	paths := []string{"/api/v1/audit/checkpoint", "/api/v1/audit/keys", "/api/v1/audit/consistency?from=1&to=1",
		"/api/v1/audit/checkpoint"}
	for i, p := range paths[:burst] {
		if resp := get(p); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d (%s): status %d, want 200 within the burst", i+1, p, resp.StatusCode)
		}
	}
	for _, p := range paths[:3] {
		resp := get(p)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("%s past the burst: status %d, want 429", p, resp.StatusCode)
		}
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || ra < 1 || time.Duration(ra)*time.Second > time.Hour+time.Second {
			t.Errorf("%s: Retry-After %q, want whole seconds in [1, 3601]", p, resp.Header.Get("Retry-After"))
		}
		var e api.Error
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code != api.CodeRateLimited || e.Message == "" {
			t.Errorf("%s: body %+v (%v), want a JSON error with code %s", p, e, err, api.CodeRateLimited)
		}
	}
	if got := h.call("", "GET", "/healthz", nil, nil); got != http.StatusOK {
		t.Errorf("healthz after the flood: %d (the limit must cover only the public audit routes)", got)
	}
}

// TestRateLimiterTakeWait: a refused take says how long until a token, and
// after that long the next take succeeds.
func TestRateLimiterTakeWait(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(2, 1, func() time.Time { return now })
	if ok, _ := l.take("a"); !ok {
		t.Fatal("first take refused")
	}
	ok, wait := l.take("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("second take: ok %v wait %v, want refused, 500ms", ok, wait)
	}
	if ok, _ := l.take(burstAddr("2001:db8::1")); !ok {
		t.Fatal("another client refused")
	}
	if ok, _ := l.take(burstAddr("2001:db8::ffff")); ok {
		t.Error("same IPv6 /64 got a second bucket")
	}
	now = now.Add(wait)
	if ok, _ := l.take("a"); !ok {
		t.Error("take refused after the wait it named")
	}
}

// TestRateLimiterBoundedWithoutReset: a full limiter drops only buckets that
// have refilled (they equal new ones). While every bucket is still
// draining, new keys share one overflow bucket, so a flood of new addresses
// can neither grow the map nor reset a drained client's bucket.
func TestRateLimiterBoundedWithoutReset(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLimiter(1, 2, func() time.Time { return now })
	l.maxKeys = 4
	drain := func(key string) {
		t.Helper()
		for l.allow(key) {
		}
	}
	for _, k := range []string{"victim", "b", "c", "d"} {
		drain(k)
	}
	if ok, _ := l.take("new-1"); !ok {
		t.Fatal("a new key refused while the overflow bucket is full")
	}
	if !l.allow("new-2") {
		t.Fatal("the overflow bucket's second token refused")
	}
	if l.allow("new-3") {
		t.Error("a third new key got a token: new keys past the bound must share one bucket")
	}
	if l.allow("victim") {
		t.Error("the drained client's bucket was reset by the flood of new keys")
	}
	if n := l.keys(); n != 4 {
		t.Errorf("%d buckets, want the bound 4", n)
	}

	// Once the buckets have refilled, the next new key finds room again.
	now = now.Add(3 * time.Second)
	if !l.allow("new-4") {
		t.Fatal("a new key refused after every bucket refilled")
	}
	if n := l.keys(); n != 1 {
		t.Errorf("%d buckets after the sweep, want 1 (the refilled ones dropped)", n)
	}
	if !l.allow("new-4") || l.allow("new-4") {
		t.Error("new-4 should hold its own bucket of burst 2")
	}
}

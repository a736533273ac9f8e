package gateway

import (
	"math"
	"sync"
	"time"
)

// defaultMaxLimiterKeys bounds a rateLimiter's buckets.
const defaultMaxLimiterKeys = 100_000

// rateLimiter is a token bucket per key (a source, a client address),
// holding at most maxKeys buckets. A bucket that has refilled to its burst
// is the same as a new one, so when the map is full those are dropped
// (at most once a second). If every bucket is still draining (more active
// keys than maxKeys, as a flood from many addresses would make), new keys
// share one overflow bucket until room is made: the flood is held to one
// key's rate, and no key it did not create loses its own bucket's state.
type rateLimiter struct {
	rate, burst float64
	now         func() time.Time
	maxKeys     int

	mu       sync.Mutex
	buckets  map[string]*bucket // guarded by mu
	overflow *bucket            // shared by new keys while buckets is full
	swept    time.Time          // the last sweep of refilled buckets
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate, burst float64, now func() time.Time) *rateLimiter {
	return &rateLimiter{rate: rate, burst: burst, now: now, maxKeys: defaultMaxLimiterKeys, buckets: map[string]*bucket{}}
}

func (l *rateLimiter) allow(key string) bool {
	ok, _ := l.take(key)
	return ok
}

// take is allow that also says, when it refuses, how long until key's
// bucket holds a token again.
func (l *rateLimiter) take(key string) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.sweep(now)
		}
		switch {
		case len(l.buckets) < l.maxKeys:
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[key] = b
		case l.overflow == nil:
			l.overflow = &bucket{tokens: l.burst, last: now}
			b = l.overflow
		default:
			b = l.overflow
		}
	}
	b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweep drops the buckets that have refilled to the burst, at most once a
// second (a full map of draining buckets is not walked on every request).
func (l *rateLimiter) sweep(now time.Time) {
	if !l.swept.IsZero() && now.Sub(l.swept) < time.Second {
		return
	}
	l.swept = now
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < l.maxKeys {
		l.overflow = nil
	}
}

// keys returns how many buckets are held (for tests).
func (l *rateLimiter) keys() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

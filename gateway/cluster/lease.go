package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotLeader is returned by a LeaseCursor whose lease term has ended.
var ErrNotLeader = errors.New("lease not held")

// Lease elects one replica at a time for work that must not run twice
// (the audit sinks): a Redis key set with SET NX PX, renewed while held,
// deleted on a clean stop. A replica that dies without releasing holds it
// until the TTL runs out; another replica then takes over.
type Lease struct {
	c     *redis.Client
	key   string
	ttl   time.Duration
	retry time.Duration
	id    string
	log   *slog.Logger
	renew *redis.Script
	drop  *redis.Script
}

// LeaseConfig configures NewLease.
type LeaseConfig struct {
	// Client is the Redis connection (required).
	Client *redis.Client
	// Prefix namespaces the key; if empty, "loggate:".
	Prefix string
	// Name names the lease (required): the key is <Prefix>lease:<Name>.
	Name string
	// TTL is how long the lease outlives its holder's last renewal. If
	// zero, 15 seconds. It is renewed every TTL/3.
	TTL time.Duration
	// Retry is how often a replica not holding the lease tries to take it.
	// If zero, TTL/3.
	Retry time.Duration
	// Holder identifies this replica in the key's value (for operators);
	// a random term token is appended. If empty, a random id.
	Holder string
	// Logger receives lease changes. If nil, nothing is logged.
	Logger *slog.Logger
}

// Lua: renew or delete the key only while it still holds our token.
const (
	leaseRenewScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`
	leaseDropScript = `if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1]) end
return 0`
)

// NewLease validates cfg.
func NewLease(cfg LeaseConfig) (*Lease, error) {
	if cfg.Client == nil || cfg.Name == "" {
		return nil, errors.New("cluster lease: Client and Name are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "loggate:"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.TTL < 30*time.Millisecond {
		return nil, fmt.Errorf("cluster lease: TTL %v is too short", cfg.TTL)
	}
	if cfg.Retry <= 0 {
		cfg.Retry = cfg.TTL / 3
	}
	if cfg.Holder == "" {
		cfg.Holder = NewReplicaID()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Lease{c: cfg.Client, key: cfg.Prefix + "lease:" + cfg.Name, ttl: cfg.TTL, retry: cfg.Retry,
		id: cfg.Holder, log: log.With("lease", cfg.Name),
		renew: redis.NewScript(leaseRenewScript), drop: redis.NewScript(leaseDropScript)}, nil
}

// Key returns the Redis key of the lease.
func (l *Lease) Key() string { return l.key }

// Run takes the lease whenever it is free and, while holding it, calls lead
// with a context that ends when the lease is lost (a renewal fails or finds
// another holder) or ctx ends, and with the term's token (for
// NewLeaseCursor). When lead returns the lease is released and Run tries to
// take it again. Run returns when ctx ends, after lead has returned and the
// lease has been released (best effort: a lease not released expires).
func (l *Lease) Run(ctx context.Context, lead func(ctx context.Context, token string)) {
	for ctx.Err() == nil {
		token := l.id + ":" + randomToken()
		ok, err := l.c.SetNX(ctx, l.key, token, l.ttl).Result()
		if err != nil && ctx.Err() == nil {
			l.log.Warn("lease acquire", "err", err)
		}
		if !ok || err != nil {
			sleepCtx(ctx, l.retry)
			continue
		}
		l.log.Info("lease acquired", "holder", l.id)
		l.hold(ctx, token, lead)
	}
}

// hold runs one term: lead under a renewal loop, then the release.
func (l *Lease) hold(ctx context.Context, token string, lead func(context.Context, string)) {
	termCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		lead(termCtx, token)
	}()
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	for held := true; held; {
		select {
		case <-done:
			held = false
		case <-termCtx.Done():
			held = false
		case <-tick.C:
			// Each renewal must answer well within the TTL, or we step down
			// before another replica can take over.
			rctx, rcancel := context.WithTimeout(termCtx, l.ttl/3)
			n, err := l.renew.Run(rctx, l.c, []string{l.key}, token, l.ttl.Milliseconds()).Int()
			rcancel()
			if err != nil || n != 1 {
				if termCtx.Err() == nil {
					l.log.Warn("lease lost; stepping down", "holder", l.id, "err", err)
				}
				held = false
			}
		}
	}
	cancel()
	<-done
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/3)
	defer rcancel()
	if err := l.drop.Run(rctx, l.c, []string{l.key}, token).Err(); err != nil {
		l.log.Warn("lease release", "err", err)
	} else {
		l.log.Info("lease released", "holder", l.id)
	}
}

func randomToken() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// LeaseCursor keeps a sink's cursor (the seq of the last event delivered)
// in Redis, so the next lease holder resumes where the last one left off.
// Save succeeds only while the lease term that made the cursor is current,
// so a holder that lost its lease cannot move the shared cursor. It
// satisfies sink.CursorStore (and Lease satisfies sink.Leaser).
type LeaseCursor struct {
	c        *redis.Client
	key      string
	leaseKey string
	token    string
	save     *redis.Script
}

// Lua: set the cursor only while KEYS[1] (the lease) holds our token.
const leaseCursorSaveScript = `if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
redis.call("SET", KEYS[2], ARGV[2])
return 1`

// NewLeaseCursor returns the cursor named name (under the lease's prefix)
// for the term token of l.
func NewLeaseCursor(l *Lease, name, token string) *LeaseCursor {
	return &LeaseCursor{c: l.c, key: l.key + ":cursor:" + name, leaseKey: l.key, token: token,
		save: redis.NewScript(leaseCursorSaveScript)}
}

// Load returns the saved seq, or 0 when none was saved.
func (lc *LeaseCursor) Load(ctx context.Context) (int64, error) {
	s, err := lc.c.Get(ctx, lc.key).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("read cursor", err)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("cursor %s holds %q, want a seq", lc.key, s)
	}
	return n, nil
}

// Save records seq, or returns ErrNotLeader when the term has ended.
func (lc *LeaseCursor) Save(ctx context.Context, seq int64) error {
	n, err := lc.save.Run(ctx, lc.c, []string{lc.leaseKey, lc.key}, lc.token, seq).Int()
	if err != nil {
		return unavailable("save cursor", err)
	}
	if n != 1 {
		return fmt.Errorf("save cursor %s: %w", lc.key, ErrNotLeader)
	}
	return nil
}

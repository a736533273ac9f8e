package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultCallTimeout bounds one Redis call made through a client from Dial.
const DefaultCallTimeout = time.Second

// Dial is DialWithin with DefaultCallTimeout.
func Dial(url string) (*redis.Client, error) { return DialWithin(url, DefaultCallTimeout) }

// DialWithin parses a redis:// or rediss:// URL (user, password and database
// from the URL; rediss enables TLS) and returns a client on which every call
// has a deadline, so a caller cut off from Redis fails closed instead of
// hanging:
//
//   - dial, read, write and pool waits are each bounded by callTimeout, and
//     the client honours context deadlines (go-redis ignores them unless
//     ContextTimeoutEnabled is set);
//   - a call whose context has no earlier deadline gets one callTimeout
//     from its start, retries included;
//   - after a call fails for want of the network, calls fail at once with an
//     error wrapping ErrUnavailable until one succeeds again: one call at a
//     time, probeEvery after the last failure, is let through to find out
//     (and the background readers,
//     marked with Background, always are). So an API request that makes
//     several calls answers 503 in about one callTimeout, not one per call.
//
// Blocking reads (XREAD BLOCK) must be made with a context from Background
// and their own deadline (block + callTimeout). It does not contact the server.
func DialWithin(url string, callTimeout time.Duration) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	opt.DialTimeout = callTimeout
	opt.ReadTimeout = callTimeout
	opt.WriteTimeout = callTimeout
	opt.PoolTimeout = callTimeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = 1
	opt.PoolSize = max(opt.PoolSize, 32)
	c := redis.NewClient(opt)
	c.AddHook(&breaker{timeout: callTimeout, probeEvery: min(callTimeout/4, 100*time.Millisecond)})
	return c, nil
}

// backgroundKey marks a context as a background reader's.
type backgroundKey struct{}

// Background marks ctx as a long-running reader's (the feed, the control
// subscription): its calls bypass the fast failure of a client from Dial,
// so they find out when Redis is back, and keep the deadline ctx has.
func Background(ctx context.Context) context.Context {
	return context.WithValue(ctx, backgroundKey{}, true)
}

func isBackground(ctx context.Context) bool {
	v, _ := ctx.Value(backgroundKey{}).(bool)
	return v
}

// breaker is the go-redis hook behind DialWithin's deadlines and fast
// failure. Its fields are atomics: every call of the client runs it.
type breaker struct {
	timeout    time.Duration
	probeEvery time.Duration
	down       atomic.Bool  // a call failed for want of the network and none succeeded since
	probing    atomic.Bool  // a call let through while down is in flight
	lastFail   atomic.Int64 // unix nanos when the last such failure (or probe) ended
}

var errFastFail = fmt.Errorf("%w: recent calls could not reach it", ErrUnavailable)

func (b *breaker) DialHook(next redis.DialHook) redis.DialHook { return next }

func (b *breaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return b.run(ctx, func(ctx context.Context) error { return next(ctx, cmd) }, func(err error) { cmd.SetErr(err) })
	}
}

func (b *breaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return b.run(ctx, func(ctx context.Context) error { return next(ctx, cmds) }, func(err error) {
			for _, c := range cmds {
				c.SetErr(err)
			}
		})
	}
}

func (b *breaker) run(ctx context.Context, call func(context.Context) error, fail func(error)) error {
	bg := isBackground(ctx)
	probe := false
	if !bg && b.down.Load() {
		if time.Now().UnixNano()-b.lastFail.Load() < int64(b.probeEvery) || !b.probing.CompareAndSwap(false, true) {
			fail(errFastFail)
			return errFastFail
		}
		probe = true
		defer func() {
			b.lastFail.Store(time.Now().UnixNano())
			b.probing.Store(false)
		}()
	}
	parent := ctx
	if !bg {
		if d, ok := ctx.Deadline(); !ok || time.Until(d) > b.timeout {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, b.timeout)
			defer cancel()
		}
	}
	if probe {
		// The commands go-redis runs to set up a new connection (HELLO)
		// come through this hook with this context: let them through too.
		ctx = Background(ctx)
	}
	err := call(ctx)
	switch {
	case err == nil || errors.Is(err, redis.Nil) || !isNetErr(err):
		b.down.Store(false)
	case parent.Err() != nil:
		// The caller gave up (a client went away, shutdown): says nothing
		// about Redis.
	default:
		b.lastFail.Store(time.Now().UnixNano())
		b.down.Store(true)
	}
	return err
}

// ErrWeakDurability reports a Redis that does not persist every write.
var ErrWeakDurability = errors.New("redis does not fsync every write")

// CheckDurability checks that Redis persists every acknowledged write
// (appendonly yes, appendfsync always). It returns an error wrapping
// ErrWeakDurability when the settings are weaker or cannot be read (a
// managed Redis that refuses CONFIG), and one wrapping ErrUnavailable when
// Redis cannot be reached.
func CheckDurability(ctx context.Context, c *redis.Client) error {
	get := func(name string) (string, error) {
		m, err := c.ConfigGet(ctx, name).Result()
		if err != nil {
			if isNetErr(err) {
				return "", fmt.Errorf("%w: config get %s: %v", ErrUnavailable, name, err)
			}
			return "", fmt.Errorf("%w: cannot read %s (%v)", ErrWeakDurability, name, err)
		}
		return strings.ToLower(m[name]), nil
	}
	aof, err := get("appendonly")
	if err != nil {
		return err
	}
	fsync, err := get("appendfsync")
	if err != nil {
		return err
	}
	if aof != "yes" || fsync != "always" {
		return fmt.Errorf("%w: appendonly=%s appendfsync=%s; want appendonly yes and appendfsync always", ErrWeakDurability, aof, fsync)
	}
	return nil
}

// isNetErr tells a connection problem from a server's refusal.
func isNetErr(err error) bool {
	var re redis.Error
	return !errors.As(err, &re)
}

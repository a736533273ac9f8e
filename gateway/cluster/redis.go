package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Dial parses a redis:// or rediss:// URL (user, password and database
// from the URL; rediss enables TLS) and returns a client tuned to fail fast,
// so requests fail closed within about a second when Redis is away.
// It does not contact the server.
func Dial(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.MaxRetries = 1
	opt.PoolSize = max(opt.PoolSize, 32)
	return redis.NewClient(opt), nil
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

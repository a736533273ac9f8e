package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Once marks single-use values (OIDC login states, device codes) as used
// across every replica, so a value consumed on one replica cannot be
// replayed on another. Values are stored hashed.
type Once struct {
	c      *redis.Client
	prefix string
}

// NewOnce returns a Once keeping its marks under prefix+"once:" (zero
// prefix: "loggate:").
func NewOnce(c *redis.Client, prefix string) (*Once, error) {
	if c == nil {
		return nil, errors.New("cluster once: client is required")
	}
	if prefix == "" {
		prefix = "loggate:"
	}
	return &Once{c: c, prefix: prefix + "once:"}, nil
}

// Consume reports whether value was unused, and marks it used until until
// (a time in the past is treated as one minute from now). It fails closed:
// with Redis unreachable it returns false and an error wrapping
// ErrUnavailable.
func (o *Once) Consume(ctx context.Context, value string, until time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(value))
	ttl := time.Until(until)
	if ttl <= 0 {
		ttl = time.Minute
	}
	ok, err := o.c.SetNX(ctx, o.prefix+hex.EncodeToString(sum[:]), 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("consume single-use value: %w: %v", ErrUnavailable, err)
	}
	return ok, nil
}

package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// maxRedisAlerts bounds the alerts kept in Redis; the oldest go first.
const maxRedisAlerts = 10000

// RedisStore keeps alerts in Redis, shared by the replicas: a hash of
// alerts by id and a sorted set by last change.
type RedisStore struct {
	c      *redis.Client
	prefix string
}

// NewRedisStore keeps alerts under prefix+"alerts:".
func NewRedisStore(c *redis.Client, prefix string) *RedisStore {
	return &RedisStore{c: c, prefix: prefix + "alerts:"}
}

func (s *RedisStore) byID() string   { return s.prefix + "byid" }
func (s *RedisStore) recent() string { return s.prefix + "recent" }

// Save writes the alert's current state.
func (s *RedisStore) Save(ctx context.Context, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.byID(), a.ID, b)
		p.ZAdd(ctx, s.recent(), redis.Z{Score: float64(a.UpdatedAt.UnixMilli()), Member: a.ID})
		return nil
	})
	if err != nil {
		return fmt.Errorf("save alert: %w", err)
	}
	if n, err := s.c.ZCard(ctx, s.recent()).Result(); err == nil && n > maxRedisAlerts {
		if old, err := s.c.ZPopMin(ctx, s.recent(), n-maxRedisAlerts).Result(); err == nil {
			for _, z := range old {
				s.c.HDel(ctx, s.byID(), fmt.Sprint(z.Member))
			}
		}
	}
	return nil
}

// Delete forgets an alert.
func (s *RedisStore) Delete(ctx context.Context, id string) error {
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, s.byID(), id)
		p.ZRem(ctx, s.recent(), id)
		return nil
	})
	return err
}

// Get returns one alert.
func (s *RedisStore) Get(ctx context.Context, id string) (Alert, error) {
	b, err := s.c.HGet(ctx, s.byID(), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return Alert{}, ErrNotFound
	}
	if err != nil {
		return Alert{}, fmt.Errorf("read alert: %w", err)
	}
	var a Alert
	return a, json.Unmarshal(b, &a)
}

// List returns up to limit alerts, most recently changed first, in state
// if set.
func (s *RedisStore) List(ctx context.Context, state string, limit int) ([]Alert, error) {
	scan := int64(limit)
	if state != "" {
		scan = maxRedisAlerts
	}
	ids, err := s.c.ZRevRange(ctx, s.recent(), 0, scan-1).Result()
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out := []Alert{}
	if len(ids) == 0 {
		return out, nil
	}
	vals, err := s.c.HMGet(ctx, s.byID(), ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		var a Alert
		if json.Unmarshal([]byte(str), &a) != nil || (state != "" && a.State != state) {
			continue
		}
		out = append(out, a)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}

// Active returns the pending and firing alerts.
func (s *RedisStore) Active(ctx context.Context) ([]Alert, error) {
	var out []Alert
	for _, st := range []string{StatePending, StateFiring} {
		as, err := s.List(ctx, st, maxRedisAlerts)
		if err != nil {
			return nil, err
		}
		out = append(out, as...)
	}
	return out, nil
}

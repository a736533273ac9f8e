package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/auth"
)

// sessionStore is where server-side browser sessions live: Redis shared by
// the replicas with --redis, else a file in --data (so sessions and their
// revocations survive a restart).
func (sp *stateParts) sessionStore(c *serveConfig) (auth.SessionStore, error) {
	if sp.redis != nil {
		return &redisSessions{c: sp.redis.client, prefix: redisPrefix + "session:", index: redisPrefix + "sessions"}, nil
	}
	s, err := auth.NewMemorySessions(filepath.Join(c.Data, "sessions.json"), nil)
	if err != nil {
		return nil, fmt.Errorf("session store: %w", err)
	}
	return s, nil
}

// redisSessions keeps each record as a key expiring with the session, and
// an index set of handles (members whose key expired are pruned by List).
type redisSessions struct {
	c             *redis.Client
	prefix, index string
}

var _ auth.SessionStore = (*redisSessions)(nil)

func (r *redisSessions) Put(ctx context.Context, rec auth.SessionRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ttl := time.Until(rec.Expires)
	if ttl <= 0 {
		return nil
	}
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, r.prefix+rec.ID, b, ttl)
		p.SAdd(ctx, r.index, rec.ID)
		return nil
	})
	return err
}

func (r *redisSessions) Update(ctx context.Context, rec auth.SessionRecord) (bool, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	// XX: only if the key still exists; KEEPTTL: the session's expiry stands.
	ok, err := r.c.SetArgs(ctx, r.prefix+rec.ID, b, redis.SetArgs{Mode: "XX", KeepTTL: true}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil && ok == "OK", err
}

func (r *redisSessions) Get(ctx context.Context, id string) (auth.SessionRecord, bool, error) {
	var rec auth.SessionRecord
	b, err := r.c.Get(ctx, r.prefix+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("session record %s: %w", id, err)
	}
	return rec, true, nil
}

func (r *redisSessions) List(ctx context.Context) ([]auth.SessionRecord, error) {
	ids, err := r.c.SMembers(ctx, r.index).Result()
	if err != nil {
		return nil, err
	}
	out := make([]auth.SessionRecord, 0, len(ids))
	for _, id := range ids {
		rec, ok, err := r.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			r.c.SRem(ctx, r.index, id) // expired: prune the index
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

func (r *redisSessions) Delete(ctx context.Context, id string) (bool, error) {
	var del *redis.IntCmd
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, r.prefix+id)
		p.SRem(ctx, r.index, id)
		return nil
	})
	if err != nil {
		return false, err
	}
	return del.Val() > 0, nil
}

package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisGroup is the consumer group every replica's Notifier joins.
const redisGroup = "delivery"

// redisOutbox is the outbox shared by replicas: a Redis Stream with one
// entry per (message, target), read through a consumer group in which each
// Notifier is its own consumer.
//
// A Notifier takes new entries with XREADGROUP (they enter its pending
// list), attempts those due, XACKs and deletes an entry after a 2xx, and
// leaves a failed one pending with its attempt count and next due time in
// two hashes. It touches what it holds (XCLAIM to itself) well within
// claimIdle, so only entries of a dead or stalled consumer go idle that
// long; those another Notifier takes over with XAUTOCLAIM. Delivery is
// therefore at least once across a crash, and never by two live replicas
// at once; the webhook-id is the message id, the same on every attempt.
//
// Keys under prefix: notify:outbox (stream), notify:attempts and
// notify:next (hashes by entry id), notify:abandoned (hash by entry id:
// kind, message id, target hash, last error; no body, URL or secret).
type redisOutbox struct {
	c         *redis.Client
	stream    string
	attempts  string
	next      string
	abandoned string
	consumer  string
	claimIdle time.Duration
}

func newOutbox(ctx context.Context, cfg Config) (outbox, error) {
	if cfg.Redis == nil {
		db, err := openOutbox(ctx, cfg.Path)
		if err != nil {
			return nil, err
		}
		return &sqliteOutbox{db: db}, nil
	}
	prefix := cfg.RedisPrefix
	if prefix == "" {
		prefix = "loggate:"
	}
	idle := cfg.RedisClaimIdle
	if idle <= 0 {
		idle = 30 * time.Second
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	o := &redisOutbox{c: cfg.Redis, stream: prefix + "notify:outbox", attempts: prefix + "notify:attempts",
		next: prefix + "notify:next", abandoned: prefix + "notify:abandoned",
		consumer: "n-" + hex.EncodeToString(b[:]), claimIdle: idle}
	err := o.c.XGroupCreateMkStream(ctx, o.stream, redisGroup, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return nil, fmt.Errorf("open notification outbox in redis: %w", err)
	}
	return o, nil
}

func (o *redisOutbox) add(ctx context.Context, rows []row) error {
	_, err := o.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range rows {
			urgent := "0"
			if r.Urgent {
				urgent = "1"
			}
			p.XAdd(ctx, &redis.XAddArgs{Stream: o.stream, Values: []any{
				"msg", r.MsgID, "target", r.Target, "kind", r.Kind, "body", r.Body,
				"urgent", urgent, "created", r.Created.UnixNano()}})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// heartbeat is the idle time after which a Notifier touches an entry it
// holds; the loop runs at least this often (maxWait), so a live holder's
// entries stay idle well under claimIdle.
func (o *redisOutbox) heartbeat() time.Duration { return o.claimIdle / 4 }

func (o *redisOutbox) maxWait() time.Duration { return o.heartbeat() }

func (o *redisOutbox) due(ctx context.Context, now time.Time, limit int) ([]row, time.Time, error) {
	// Take over what dead consumers held.
	claimed, _, err := o.c.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: o.stream, Group: redisGroup,
		Consumer: o.consumer, MinIdle: o.claimIdle, Start: "0-0", Count: int64(limit)}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, time.Time{}, fmt.Errorf("read outbox: claim: %w", err)
	}
	_ = claimed
	if err := o.touch(ctx); err != nil {
		return nil, time.Time{}, err
	}
	// New entries join this consumer's pending list.
	err = o.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: redisGroup, Consumer: o.consumer,
		Streams: []string{o.stream, ">"}, Count: int64(limit), Block: -1}).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, time.Time{}, fmt.Errorf("read outbox: %w", err)
	}
	held, err := o.held(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	var due []row
	var next time.Time
	for _, r := range held {
		if !r.NextAt.After(now) {
			due = append(due, r)
		} else if next.IsZero() || r.NextAt.Before(next) {
			next = r.NextAt
		}
	}
	slices.SortStableFunc(due, func(a, b row) int {
		if a.Urgent != b.Urgent {
			if a.Urgent {
				return -1
			}
			return 1
		}
		return a.NextAt.Compare(b.NextAt)
	})
	if len(due) > limit {
		due = due[:limit]
	}
	return due, next, nil
}

// touch resets the idle time of entries this consumer holds that have been
// idle for a heartbeat, so no live replica's entry is claimed. MinIdle on
// the XCLAIM keeps an entry another consumer has just claimed (idle reset)
// from being taken back.
func (o *redisOutbox) touch(ctx context.Context) error {
	hb := o.heartbeat()
	for start := "-"; ; {
		ps, err := o.c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: o.stream, Group: redisGroup,
			Idle: hb, Start: start, End: "+", Count: 500, Consumer: o.consumer}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read outbox: pending: %w", err)
		}
		if len(ps) == 0 {
			return nil
		}
		ids := make([]string, len(ps))
		for i, p := range ps {
			ids[i] = p.ID
		}
		if err := o.c.XClaimJustID(ctx, &redis.XClaimArgs{Stream: o.stream, Group: redisGroup,
			Consumer: o.consumer, MinIdle: hb, Messages: ids}).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read outbox: touch: %w", err)
		}
		if len(ps) < 500 {
			return nil
		}
		start = "(" + ps[len(ps)-1].ID
	}
}

// held returns every entry in this consumer's pending list, with its
// attempts and next due time. Entries deleted meanwhile are acknowledged.
func (o *redisOutbox) held(ctx context.Context) ([]row, error) {
	var rows []row
	var gone []string
	for start := "0"; ; {
		res, err := o.c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: redisGroup, Consumer: o.consumer,
			Streams: []string{o.stream, start}, Count: 500, Block: -1}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		var ms []redis.XMessage
		if len(res) > 0 {
			ms = res[0].Messages
		}
		for _, m := range ms {
			r, ok := parseEntry(m)
			if !ok {
				gone = append(gone, m.ID)
				continue
			}
			rows = append(rows, r)
		}
		if len(ms) < 500 {
			break
		}
		start = ms[len(ms)-1].ID
	}
	if len(gone) > 0 {
		if err := o.c.XAck(ctx, o.stream, redisGroup, gone...).Err(); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	att, err := o.c.HMGet(ctx, o.attempts, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	nxt, err := o.c.HMGet(ctx, o.next, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	for i := range rows {
		if s, ok := att[i].(string); ok {
			rows[i].Attempts, _ = strconv.Atoi(s)
		}
		if s, ok := nxt[i].(string); ok {
			if ns, err := strconv.ParseInt(s, 10, 64); err == nil {
				rows[i].NextAt = time.Unix(0, ns)
			}
		}
	}
	return rows, nil
}

// parseEntry reads a stream entry; false for a deleted or malformed one.
func parseEntry(m redis.XMessage) (row, bool) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	created, err := strconv.ParseInt(str("created"), 10, 64)
	if err != nil || str("msg") == "" || str("target") == "" {
		return row{}, false
	}
	t := time.Unix(0, created)
	return row{ID: m.ID, MsgID: str("msg"), Target: str("target"), Kind: str("kind"), Body: []byte(str("body")),
		Urgent: str("urgent") == "1", Created: t, NextAt: t}, true
}

func (o *redisOutbox) done(ctx context.Context, r row) error {
	_, err := o.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, o.stream, redisGroup, r.ID)
		p.XDel(ctx, o.stream, r.ID)
		p.HDel(ctx, o.attempts, r.ID)
		p.HDel(ctx, o.next, r.ID)
		return nil
	})
	return err
}

func (o *redisOutbox) fail(ctx context.Context, r row, next time.Time, abandon bool, msg string) error {
	var rec []byte
	if abandon {
		var err error
		rec, err = json.Marshal(map[string]any{"msg_id": r.MsgID, "target": r.Target, "kind": r.Kind,
			"attempts": r.Attempts + 1, "created": r.Created.UTC(), "last_error": msg})
		if err != nil {
			return err
		}
	}
	_, err := o.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if abandon {
			p.HSet(ctx, o.abandoned, r.ID, rec)
			p.XAck(ctx, o.stream, redisGroup, r.ID)
			p.XDel(ctx, o.stream, r.ID)
			p.HDel(ctx, o.attempts, r.ID)
			p.HDel(ctx, o.next, r.ID)
			return nil
		}
		p.HIncrBy(ctx, o.attempts, r.ID, 1)
		p.HSet(ctx, o.next, r.ID, next.UnixNano())
		return nil
	})
	return err
}

// pending counts the stream: delivered and abandoned entries are deleted.
func (o *redisOutbox) pending(ctx context.Context) (int, error) {
	n, err := o.c.XLen(ctx, o.stream).Result()
	return int(n), err
}

func (o *redisOutbox) countDue(ctx context.Context, now time.Time) (int, error) {
	held, err := o.held(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range held {
		if !r.NextAt.After(now) {
			n++
		}
	}
	return n, nil
}

func (o *redisOutbox) close() error { return nil }

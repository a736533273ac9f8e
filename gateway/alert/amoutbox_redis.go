package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisOutbox is the Alertmanager outbox the replicas share in Redis.
// Rows live in hashes by target/alert id (body, version, attempts, holder)
// and, per target, in a sorted set by the time they are next due. Taking a
// due row claims it: the holder is recorded and the row's due time moves
// to the end of the claim lease, so no other replica takes it while the
// holder posts it; a holder that dies leaves the row to come due again
// when the lease ends, and another replica takes it over then. A newer
// state of a held row waits for the holder to finish (done or retry make
// it due at once), so one row is never posted by two live replicas at
// once. Times are the caller's clock, in milliseconds.
//
// Keys under prefix: alerts:am:rows, :ver, :att, :claim (hashes by
// "target/alert id") and alerts:am:due:TARGET (sorted set of alert ids).
type redisOutbox struct {
	c        *redis.Client
	prefix   string
	consumer string
	lease    time.Duration
}

func newRedisOutbox(c *redis.Client, prefix string, lease time.Duration) *redisOutbox {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return &redisOutbox{c: c, prefix: prefix + "alerts:am:", consumer: "am-" + hex.EncodeToString(b[:]), lease: lease}
}

func (o *redisOutbox) keys(target string) []string {
	return []string{o.prefix + "rows", o.prefix + "ver", o.prefix + "att", o.prefix + "claim", o.prefix + "due:" + target}
}

func field(target, alertID string) string { return target + "/" + alertID }

func ms(t time.Time) int64 { return t.UnixMilli() }

// KEYS: rows ver att claim due; ARGV: field, alert id, body, now, max.
var amPutScript = redis.NewScript(`
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 0 and redis.call("HLEN", KEYS[1]) >= tonumber(ARGV[5]) then
	return 0
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[3])
redis.call("HINCRBY", KEYS[2], ARGV[1], 1)
redis.call("HSET", KEYS[3], ARGV[1], 0)
if redis.call("HEXISTS", KEYS[4], ARGV[1]) == 0 then
	redis.call("ZADD", KEYS[5], ARGV[4], ARGV[2])
end
return 1`)

// KEYS: rows ver att claim due; ARGV: field prefix, now, lease end,
// consumer, limit. Returns id, body, version, attempts for each row taken.
var amClaimScript = redis.NewScript(`
local ids = redis.call("ZRANGEBYSCORE", KEYS[5], "-inf", ARGV[2], "LIMIT", 0, tonumber(ARGV[5]))
local out = {}
for _, id in ipairs(ids) do
	local f = ARGV[1] .. id
	local body = redis.call("HGET", KEYS[1], f)
	if body then
		redis.call("ZADD", KEYS[5], ARGV[3], id)
		redis.call("HSET", KEYS[4], f, ARGV[4])
		table.insert(out, id)
		table.insert(out, body)
		table.insert(out, redis.call("HGET", KEYS[2], f) or "0")
		table.insert(out, redis.call("HGET", KEYS[3], f) or "0")
	else
		redis.call("ZREM", KEYS[5], id)
		redis.call("HDEL", KEYS[4], f)
	end
end
return out`)

// KEYS: rows ver att claim due; ARGV: field, alert id, version, now,
// consumer.
var amDoneScript = redis.NewScript(`
local v = redis.call("HGET", KEYS[2], ARGV[1])
if v == ARGV[3] then
	redis.call("HDEL", KEYS[1], ARGV[1])
	redis.call("HDEL", KEYS[2], ARGV[1])
	redis.call("HDEL", KEYS[3], ARGV[1])
	redis.call("HDEL", KEYS[4], ARGV[1])
	redis.call("ZREM", KEYS[5], ARGV[2])
	return 1
end
if v and redis.call("HGET", KEYS[4], ARGV[1]) == ARGV[5] then
	redis.call("HDEL", KEYS[4], ARGV[1])
	redis.call("ZADD", KEYS[5], ARGV[4], ARGV[2])
end
return 0`)

// KEYS: rows ver att claim due; ARGV: field, alert id, version, next, now,
// consumer.
var amRetryScript = redis.NewScript(`
if redis.call("HGET", KEYS[4], ARGV[1]) ~= ARGV[6] then
	return 0
end
redis.call("HDEL", KEYS[4], ARGV[1])
if redis.call("HGET", KEYS[2], ARGV[1]) == ARGV[3] then
	redis.call("HINCRBY", KEYS[3], ARGV[1], 1)
	redis.call("ZADD", KEYS[5], ARGV[4], ARGV[2])
else
	redis.call("ZADD", KEYS[5], ARGV[5], ARGV[2])
end
return 1`)

func (o *redisOutbox) put(ctx context.Context, alertID, t string, b []byte, now time.Time, max int) (bool, error) {
	n, err := amPutScript.Run(ctx, o.c, o.keys(t), field(t, alertID), alertID, b, ms(now), max).Int()
	return n == 1, err
}

func (o *redisOutbox) due(ctx context.Context, t string, now time.Time, limit int) ([]outRow, error) {
	res, err := amClaimScript.Run(ctx, o.c, o.keys(t), t+"/", ms(now), ms(now.Add(o.lease)), o.consumer, limit).StringSlice()
	if err != nil {
		return nil, err
	}
	rows := make([]outRow, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		v, err := strconv.ParseInt(res[i+2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("alert outbox row %s: version %q", res[i], res[i+2])
		}
		att, _ := strconv.Atoi(res[i+3])
		rows = append(rows, outRow{alertID: res[i], version: v, attempt: att, body: []byte(res[i+1])})
	}
	return rows, nil
}

func (o *redisOutbox) done(ctx context.Context, t string, r outRow, now time.Time) error {
	return amDoneScript.Run(ctx, o.c, o.keys(t), field(t, r.alertID), r.alertID, r.version, ms(now), o.consumer).Err()
}

func (o *redisOutbox) retry(ctx context.Context, t string, r outRow, next, now time.Time) error {
	return amRetryScript.Run(ctx, o.c, o.keys(t), field(t, r.alertID), r.alertID, r.version, ms(next), ms(now), o.consumer).Err()
}

func (o *redisOutbox) pending(ctx context.Context) (int, error) {
	n, err := o.c.HLen(ctx, o.prefix+"rows").Result()
	return int(n), err
}

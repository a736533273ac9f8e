package doctor

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// CheckRedis reads the persistence settings (CONFIG GET appendonly,
// appendfsync, save). loggate's audit trail needs every acknowledged write
// fsynced; acceptWeak (--redis-accept-weak-durability) turns a weaker
// setting from a failure into a warning, as serve does.
func CheckRedis(ctx context.Context, c *redis.Client, acceptWeak bool) []Result {
	const check = "redis persistence"
	if err := c.Ping(ctx).Err(); err != nil {
		return []Result{fail("redis", "check --redis (host, port, password, rediss:// for TLS) and the network", "cannot reach Redis: %v", err)}
	}
	rs := []Result{ok("redis", "reachable")}
	conf := map[string]string{}
	for _, k := range []string{"appendonly", "appendfsync", "save"} {
		m, err := c.ConfigGet(ctx, k).Result()
		if err != nil {
			var re redis.Error
			if errors.As(err, &re) {
				return append(rs, weak(acceptWeak, "confirm with your provider that writes are fsynced (AOF, fsync always) and pass --redis-accept-weak-durability",
					"Redis refuses CONFIG GET (%v): persistence unknown", err))
			}
			return append(rs, fail(check, "check the network to Redis", "config get %s: %v", k, err))
		}
		conf[k] = strings.ToLower(m[k])
	}
	if conf["appendonly"] != "yes" || conf["appendfsync"] != "always" {
		return append(rs, weak(acceptWeak, "set appendonly yes and appendfsync always in redis.conf (CONFIG SET and CONFIG REWRITE)",
			"appendonly=%s appendfsync=%s save=%q: an acknowledged audit event could be lost in a crash", conf["appendonly"], conf["appendfsync"], conf["save"]))
	}
	return append(rs, ok(check, "appendonly=yes appendfsync=always save=%q", conf["save"]))
}

func weak(accepted bool, fix, format string, a ...any) Result {
	if accepted {
		return warn("redis persistence", fix+" (accepted by --redis-accept-weak-durability)", format, a...)
	}
	return fail("redis persistence", fix, format, a...)
}

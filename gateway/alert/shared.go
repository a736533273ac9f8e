package alert

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared makes the engines of several replicas act as one through Redis:
// every replica forwards the matches it counted to a Redis list; one
// replica, the leader (a lease renewed on every tick), folds them into its
// own windows and alone evaluates and reports changes. A rule therefore
// fires once for the cluster, and resolves once.
type Shared struct {
	// Client is the shared Redis.
	Client *redis.Client
	// Prefix starts every key ("loggate:").
	Prefix string
	// ReplicaID names this replica in the lease; it must differ between
	// replicas.
	ReplicaID string
	// Lease is how long a leader holds the lease without renewing it;
	// zero means 10s.
	Lease time.Duration
	// MaxBacklog bounds the forwarded matches waiting; zero means 100000.
	MaxBacklog int64
}

// delta is a replica's matches for one group since its last tick.
type delta struct {
	Rule    string   `json:"r"`
	Digest  string   `json:"d"` // the rule set's digest: deltas of other rule sets are ignored
	Service string   `json:"s,omitempty"`
	Env     string   `json:"e,omitempty"`
	Values  []string `json:"v,omitempty"`
	N       int64    `json:"n"`
	At      int64    `json:"t"` // unix nanoseconds of the last match
	// Sample is the last matching line of a sampling rule (redacted, cut).
	Sample string `json:"m,omitempty"`
}

func (sh *Shared) key(k string) string { return sh.Prefix + "alerts:" + k }

// lead takes or renews the lease and reports whether this replica leads.
func (sh *Shared) lead(ctx context.Context) bool {
	lease := sh.Lease
	if lease <= 0 {
		lease = 10 * time.Second
	}
	k := sh.key("leader")
	ok, err := sh.Client.SetNX(ctx, k, sh.ReplicaID, lease).Result()
	if err != nil {
		return false
	}
	if ok {
		return true
	}
	// Renew only our own lease, atomically.
	n, err := renewScript.Run(ctx, sh.Client, []string{k}, sh.ReplicaID, lease.Milliseconds()).Int()
	return err == nil && n == 1
}

var renewScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`)

// push forwards deltas (bounded: the oldest beyond MaxBacklog are cut).
func (sh *Shared) push(ctx context.Context, ds []delta) error {
	if len(ds) == 0 {
		return nil
	}
	vals := make([]any, len(ds))
	for i, d := range ds {
		b, _ := json.Marshal(d)
		vals[i] = b
	}
	max := sh.MaxBacklog
	if max <= 0 {
		max = 100000
	}
	k := sh.key("matches")
	_, err := sh.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, k, vals...)
		p.LTrim(ctx, k, -max, -1)
		return nil
	})
	return err
}

// pull takes every forwarded delta.
func (sh *Shared) pull(ctx context.Context) ([]delta, error) {
	k := sh.key("matches")
	var rng *redis.StringSliceCmd
	_, err := sh.Client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rng = p.LRange(ctx, k, 0, -1)
		p.Del(ctx, k)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]delta, 0, len(rng.Val()))
	for _, s := range rng.Val() {
		var d delta
		if json.Unmarshal([]byte(s), &d) == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

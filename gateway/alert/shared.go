package alert

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared makes the engines of several replicas act as one through Redis:
// every replica forwards the matches it counted to a Redis list; one
// replica, the leader (a lease renewed on every tick), folds them into its
// own windows and alone evaluates and reports changes. A rule therefore
// fires once for the cluster, and resolves once.
//
// After every tick the leader writes its state to Redis (alerts:state,
// fenced by the lease): each group's window buckets, times and alert. A
// replica that becomes leader (the old one died, or the whole cluster
// restarted) adopts it before it evaluates, and takes the pending and
// firing alerts from Store when set: the same alert ids and start times,
// windows refilled from the last counts. A firing alert therefore stays
// firing while lines keep coming, is not reported fired a second time, and
// resolves once when they stop.
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
	// Store, if set, is the shared alert store the sink writes (a
	// RedisStore): a new leader takes its pending and firing alerts as the
	// ones in force, so an alert the old leader reported just before it
	// died (its state not yet written) is not reported again.
	Store interface {
		Active(ctx context.Context) ([]Alert, error)
	}
}

// snapshot is the leader's state as written after each tick.
type snapshot struct {
	// Digest is the rule set's: a snapshot of other rules' windows is not
	// adopted.
	Digest string      `json:"digest"`
	Groups []snapGroup `json:"groups"`
}

// snapGroup is one group's window and alert.
type snapGroup struct {
	Rule    string   `json:"r"`
	Service string   `json:"s,omitempty"`
	Env     string   `json:"e,omitempty"`
	Values  []string `json:"v,omitempty"`
	// Buckets are the window's non-empty buckets: [bucket number, count].
	Buckets  [][2]int64 `json:"b,omitempty"`
	Created  int64      `json:"c"` // unix nanoseconds
	LastSeen int64      `json:"l"`
	LastSent int64      `json:"ls,omitempty"`
	State    string     `json:"st,omitempty"`
	Alert    *Alert     `json:"a,omitempty"`
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

// saveState writes the leader's state if this replica still holds the
// lease.
func (sh *Shared) saveState(ctx context.Context, b []byte) (bool, error) {
	n, err := saveStateScript.Run(ctx, sh.Client, []string{sh.key("leader"), sh.key("state")}, sh.ReplicaID, b).Int()
	return n == 1, err
}

var saveStateScript = redis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("SET", KEYS[2], ARGV[2]) return 1 else return 0 end`)

// loadState reads the last leader's state; nil if there is none.
func (sh *Shared) loadState(ctx context.Context) (*snapshot, error) {
	b, err := sh.Client.Get(ctx, sh.key("state")).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

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

package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is the backend shared by several replicas.
//
// Layout under Prefix:
//
//	<p>rec:<kind>:<id>                 hash: kind id state owner service env lookup created doc
//	<p>idx:<kind>                      sorted set, all records of a kind
//	<p>idx:<kind>:state:<state>        sorted set
//	<p>idx:<kind>:owner:<owner>        sorted set
//	<p>idx:<kind>:lookup:<lookup>      sorted set
//
// Index members all have score 0 and are "<created>:<id>" with created as a
// 20-digit offset nanosecond count, so lexicographic order is (created, id)
// order and newest-first paging is ZREVRANGEBYLEX. (Float scores cannot hold
// nanosecond times exactly.) An index may hold a stale member for a moment
// only in the sense that List re-checks every field against the record.
type Redis struct {
	c          *redis.Client
	prefix     string
	maxRetries int
}

// RedisConfig configures a Redis backend.
type RedisConfig struct {
	// Client is the connection to use (required); the backend never
	// closes it (the cluster wiring shares one client).
	Client *redis.Client
	// Prefix namespaces every key; zero means "loggate:".
	Prefix string
	// MaxRetries bounds how often Update re-runs fn after losing a race;
	// zero means 50. Past it, Update returns ErrConflict.
	MaxRetries int
}

var _ Backend = (*Redis)(nil)

// NewRedis returns a Redis backend. It does not contact the server; use Ping.
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.Client == nil {
		return nil, errors.New("redis store: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "loggate:"
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 50
	}
	return &Redis{c: cfg.Client, prefix: cfg.Prefix, maxRetries: cfg.MaxRetries}, nil
}

func (r *Redis) recKey(kind, id string) string { return r.prefix + "rec:" + kind + ":" + id }

func (r *Redis) idxKeys(rec Record) []string {
	base := r.prefix + "idx:" + rec.Kind
	keys := []string{base, base + ":state:" + rec.State}
	if rec.Owner != "" {
		keys = append(keys, base+":owner:"+rec.Owner)
	}
	if rec.Lookup != "" {
		keys = append(keys, base+":lookup:"+rec.Lookup)
	}
	return keys
}

// member renders the (created, id) sort key; created is offset by 2^63 so
// that every int64 maps to a 20-digit unsigned number in order.
func member(created time.Time, id string) string {
	u := uint64(created.UnixNano()) ^ (1 << 63)
	return fmt.Sprintf("%020d:%s", u, id)
}

func memberID(m string) string {
	_, id, _ := strings.Cut(m, ":")
	return id
}

// unavailable wraps a Redis error; redis.Nil is not an error here.
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}

type redisTx struct {
	r       *Redis
	tx      *redis.Tx
	read    map[string]*Record // by record key; nil value: absent
	writes  []Record
	written map[string]int // record key -> index in writes
}

func (t *redisTx) load(ctx context.Context, kind, id string) (*Record, error) {
	key := t.r.recKey(kind, id)
	if rec, ok := t.read[key]; ok {
		return rec, nil
	}
	if err := t.tx.Watch(ctx, key).Err(); err != nil {
		return nil, unavailable("watch", err)
	}
	m, err := t.tx.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, unavailable("get "+kind, err)
	}
	var rec *Record
	if len(m) > 0 {
		v, err := recordFromHash(m)
		if err != nil {
			return nil, err
		}
		rec = &v
	}
	t.read[key] = rec
	return rec, nil
}

func (t *redisTx) Get(ctx context.Context, kind, id string) (Record, error) {
	if i, ok := t.written[t.r.recKey(kind, id)]; ok {
		return t.writes[i], nil
	}
	rec, err := t.load(ctx, kind, id)
	if err != nil {
		return Record{}, err
	}
	if rec == nil {
		return Record{}, ErrNotFound
	}
	return *rec, nil
}

func (t *redisTx) Put(ctx context.Context, rec Record) error {
	if rec.Kind == "" || rec.ID == "" {
		return fmt.Errorf("put record: kind and id are required")
	}
	old, err := t.load(ctx, rec.Kind, rec.ID)
	if err != nil {
		return err
	}
	if old != nil {
		rec.Created = old.Created // as in SQLite: created is set once
	}
	key := t.r.recKey(rec.Kind, rec.ID)
	if i, ok := t.written[key]; ok {
		t.writes[i] = rec
		return nil
	}
	t.written[key] = len(t.writes)
	t.writes = append(t.writes, rec)
	return nil
}

func (t *redisTx) commit(ctx context.Context) error {
	if len(t.writes) == 0 {
		return nil
	}
	_, err := t.tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, rec := range t.writes {
			key := t.r.recKey(rec.Kind, rec.ID)
			if old := t.read[key]; old != nil {
				m := member(old.Created, old.ID)
				for _, k := range t.r.idxKeys(*old) {
					p.ZRem(ctx, k, m)
				}
			}
			p.HSet(ctx, key, recordToHash(rec))
			m := member(rec.Created, rec.ID)
			for _, k := range t.r.idxKeys(rec) {
				p.ZAdd(ctx, k, redis.Z{Score: 0, Member: m})
			}
		}
		return nil
	})
	return err
}

// Update implements Backend with WATCH/MULTI/EXEC: every record fn reads or
// writes is watched, and fn runs again when another client changed one of
// them before EXEC.
func (r *Redis) Update(ctx context.Context, fn func(Tx) error) error {
	for range r.maxRetries {
		var fnErr error
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			t := &redisTx{r: r, tx: tx, read: map[string]*Record{}, written: map[string]int{}}
			if fnErr = fn(t); fnErr != nil {
				return fnErr
			}
			return t.commit(ctx)
		})
		switch {
		case err == nil:
			return nil
		case fnErr != nil:
			return fnErr
		case errors.Is(err, redis.TxFailedErr):
			continue // lost a race: run fn again on fresh data
		default:
			return unavailable("update", err)
		}
	}
	return fmt.Errorf("%w: update lost %d races in a row", ErrConflict, r.maxRetries)
}

// Get implements Backend.
func (r *Redis) Get(ctx context.Context, kind, id string) (Record, error) {
	m, err := r.c.HGetAll(ctx, r.recKey(kind, id)).Result()
	if err != nil {
		return Record{}, unavailable("get "+kind, err)
	}
	if len(m) == 0 {
		return Record{}, ErrNotFound
	}
	return recordFromHash(m)
}

// List implements Backend: it walks the most selective index newest first
// and checks the remaining filters on the records themselves.
func (r *Redis) List(ctx context.Context, q Query) ([]Record, string, error) {
	limit := clampLimit(q.Limit)
	base := r.prefix + "idx:" + q.Kind
	idx := base
	switch {
	case q.Lookup != "":
		idx = base + ":lookup:" + q.Lookup
	case q.Owner != "":
		idx = base + ":owner:" + q.Owner
	case q.State != "":
		idx = base + ":state:" + q.State
	}
	maxLex := "+"
	if q.Cursor != "" {
		c, id, err := DecodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		maxLex = "(" + member(c, id)
	}
	var out []Record
	batch := int64(limit + 1)
	for len(out) <= limit {
		ms, err := r.c.ZRevRangeByLex(ctx, idx, &redis.ZRangeBy{Max: maxLex, Min: "-", Count: batch}).Result()
		if err != nil {
			return nil, "", unavailable("list "+q.Kind, err)
		}
		if len(ms) == 0 {
			break
		}
		cmds, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, m := range ms {
				p.HGetAll(ctx, r.recKey(q.Kind, memberID(m)))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, "", unavailable("list "+q.Kind, err)
		}
		for i, cmd := range cmds {
			h, err := cmd.(*redis.MapStringStringCmd).Result()
			if err != nil || len(h) == 0 {
				continue // deleted or never completed
			}
			rec, err := recordFromHash(h)
			if err != nil {
				return nil, "", err
			}
			if member(rec.Created, rec.ID) != ms[i] || !matches(rec, q) {
				continue
			}
			out = append(out, rec)
			if len(out) > limit {
				break
			}
		}
		if int64(len(ms)) < batch {
			break
		}
		maxLex = "(" + ms[len(ms)-1]
		batch = min(batch*2, 2000)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = EncodeCursor(last.Created, last.ID)
	}
	return out, next, nil
}

func matches(rec Record, q Query) bool {
	for _, f := range []struct{ want, got string }{{q.State, rec.State}, {q.Owner, rec.Owner},
		{q.Service, rec.Service}, {q.Env, rec.Env}, {q.Lookup, rec.Lookup}} {
		if f.want != "" && f.want != f.got {
			return false
		}
	}
	return true
}

// Ping implements Backend.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// Close implements Backend. The client is shared with the rest of the
// cluster wiring, so it is left open.
func (r *Redis) Close() error { return nil }

func recordToHash(rec Record) map[string]any {
	return map[string]any{
		"kind": rec.Kind, "id": rec.ID, "state": rec.State, "owner": rec.Owner,
		"service": rec.Service, "env": rec.Env, "lookup": rec.Lookup,
		"created": strconv.FormatInt(rec.Created.UnixNano(), 10), "doc": rec.Doc,
	}
}

func recordFromHash(m map[string]string) (Record, error) {
	ns, err := strconv.ParseInt(m["created"], 10, 64)
	if err != nil || m["kind"] == "" || m["id"] == "" {
		return Record{}, fmt.Errorf("%w: malformed record %s:%s", ErrUnavailable, m["kind"], m["id"])
	}
	return Record{Kind: m["kind"], ID: m["id"], State: m["state"], Owner: m["owner"], Service: m["service"],
		Env: m["env"], Lookup: m["lookup"], Created: time.Unix(0, ns), Doc: []byte(m["doc"])}, nil
}

package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// Feed is the shared live log feed. Each log stream is a Redis Stream
// whose entry ids are "<seq>-0", so the seq is assigned atomically with the
// append (a Lua script: INCRBY the stream's counter, XADD with MAXLEN ~
// retention) and a resume is an XRANGE from "<after+1>". Every replica runs
// Run, which reads all streams with one blocking XREAD and hands the entries
// to its hub with PublishAssigned: Redis carries each line once per replica.
//
// Feed implements logs.Sequencer (Publish) and logs.Backlog (reads only:
// the stream is the backlog), so the hub restores and resumes from Redis.
//
// Keys under Prefix:
//
//	<p>log:<service>/<env>        the stream (path-escaped names)
//	<p>logseq:<service>/<env>     its last seq
//	<p>logstreams                 set of known streams
//	<p>logstreams:new             stream announcing new streams to readers
type Feed struct {
	c         *redis.Client
	prefix    string
	retention func(env string) logs.Retention
	block     time.Duration
	callTO    time.Duration
	control   *Control
	log       *slog.Logger
	publish   *redis.Script
	// ring seals entries at rest (feed_seal.go); nil stores them in clear.
	ring         *seal.Ring
	sealedScript *redis.Script

	mu       sync.Mutex
	health   error            // nil when the reader is connected
	lastSeen map[string]int64 // stream name -> highest seq this replica appended (sealed publish)
	// OnDown, when set, is called once per outage with the error.
}

// FeedConfig configures a Feed.
type FeedConfig struct {
	// Client is the Redis connection (required; not closed by Feed).
	Client *redis.Client
	// Prefix namespaces the keys; zero means "loggate:".
	Prefix string
	// Retention gives the per-environment caps; MaxEntries becomes the
	// stream's approximate MAXLEN (MaxAge and MaxBytes are not applied in
	// Redis). Nil means logs.DefaultMaxEntries everywhere.
	Retention func(env string) logs.Retention
	// Block is how long one XREAD waits; zero means 1s. It bounds how long
	// Run takes to notice that its context ended.
	Block time.Duration
	// CallTimeout bounds each of Run's calls beyond Block, so a reader cut
	// off from Redis notices (and ends its viewers) instead of waiting for
	// the socket; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// Control, when set, is synced before each batch of entries is handed
	// to the hub (Control.Sync), so a viewer never gets an entry before a
	// revocation appended before it; nil delivers at once.
	Control *Control
	// Logger receives connection problems; nil discards them.
	Logger *slog.Logger
	// Keys, when set, seals every entry at rest (see feed_seal.go); nil
	// stores entries in clear.
	Keys *seal.Ring
}

var (
	_ logs.Sequencer    = (*Feed)(nil)
	_ logs.Backlog      = (*Feed)(nil)
	_ logs.StreamLister = (*Feed)(nil)
)

// publishScript appends ARGV[3..] to the stream KEYS[2] with ids
// "<seq>-0", the seqs following the counter KEYS[1], and registers the
// stream (ARGV[2]) in KEYS[3], announcing it on KEYS[4] the first time.
// It returns the first seq.
const publishScript = `
local n = #ARGV - 2
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for i = 1, n do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('%d-0', first + i - 1), 'e', ARGV[i + 2])
end
if redis.call('SADD', KEYS[3], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 's', ARGV[2])
end
return first
`

// NewFeed validates cfg.
func NewFeed(cfg FeedConfig) (*Feed, error) {
	if cfg.Client == nil {
		return nil, errors.New("cluster feed: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "loggate:"
	}
	if cfg.Retention == nil {
		cfg.Retention = func(string) logs.Retention { return logs.Retention{} }
	}
	if cfg.Block <= 0 {
		cfg.Block = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	return &Feed{c: cfg.Client, prefix: cfg.Prefix, retention: cfg.Retention, block: cfg.Block, callTO: cfg.CallTimeout, control: cfg.Control, log: cfg.Logger,
		publish: redis.NewScript(publishScript), health: errors.New("feed reader not started"),
		ring: cfg.Keys, sealedScript: redis.NewScript(publishSealedScript)}, nil
}

func streamName(s logs.Stream) string {
	return url.PathEscape(s.Service) + "/" + url.PathEscape(s.Env)
}

func parseStreamName(n string) (logs.Stream, bool) {
	a, b, ok := strings.Cut(n, "/")
	if !ok {
		return logs.Stream{}, false
	}
	svc, err1 := url.PathUnescape(a)
	env, err2 := url.PathUnescape(b)
	return logs.Stream{Service: svc, Env: env}, err1 == nil && err2 == nil && svc != ""
}

func (f *Feed) streamKey(name string) string { return f.prefix + "log:" + name }
func (f *Feed) seqKey(name string) string    { return f.prefix + "logseq:" + name }
func (f *Feed) registryKey() string          { return f.prefix + "logstreams" }
func (f *Feed) announceKey() string          { return f.prefix + "logstreams:new" }

// wireEntry is an entry as stored: the seq is the stream id, not repeated.
func encodeEntry(e *logs.Entry) ([]byte, error) {
	c := *e
	c.Seq = 0
	return json.Marshal(&c)
}

// Publish implements logs.Sequencer: it appends the entries to their
// streams, in order, and returns them with Seq set. Entries of one stream
// are appended atomically; a batch spanning streams is one script per
// stream, so a failure may leave earlier streams appended.
func (f *Feed) Publish(ctx context.Context, entries []logs.Entry) ([]logs.Entry, error) {
	if f.ring != nil {
		return f.publishSealed(ctx, entries)
	}
	order, idx := groupByStream(entries)
	for _, s := range order {
		name := streamName(s)
		is := idx[s]
		args := make([]any, 0, len(is)+2)
		args = append(args, f.retention(s.Env).MaxEntries, name)
		if args[0].(int) <= 0 {
			args[0] = logs.DefaultMaxEntries
		}
		for _, i := range is {
			b, err := encodeEntry(&entries[i])
			if err != nil {
				return nil, fmt.Errorf("feed publish: encode entry: %w", err)
			}
			args = append(args, b)
		}
		first, err := f.publish.Run(ctx, f.c, []string{f.seqKey(name), f.streamKey(name), f.registryKey(), f.announceKey()}, args...).Int64()
		if err != nil {
			return nil, fmt.Errorf("feed publish %s: %w: %v", s, ErrUnavailable, err)
		}
		for j, i := range is {
			entries[i].Seq = first + int64(j)
		}
	}
	return entries, nil
}

func decodeMessage(s logs.Stream, m redis.XMessage) (logs.Entry, error) {
	ms, _, _ := strings.Cut(m.ID, "-")
	seq, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || seq <= 0 {
		return logs.Entry{}, fmt.Errorf("feed: stream %s: malformed id %q", s, m.ID)
	}
	raw, _ := m.Values["e"].(string)
	var e logs.Entry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return logs.Entry{}, fmt.Errorf("feed: stream %s seq %d: %w", s, seq, err)
	}
	e.Seq = seq
	e.Service, e.Env = s.Service, s.Env
	return e, nil
}

// Append implements logs.Backlog: entries are already in Redis.
func (f *Feed) Append(context.Context, []logs.Entry) error { return nil }

// Trim implements logs.Backlog: XADD trims by MAXLEN.
func (f *Feed) Trim(context.Context, logs.Stream, logs.Retention) error { return nil }

// LastSeq implements logs.Backlog.
func (f *Feed) LastSeq(ctx context.Context, s logs.Stream) (int64, error) {
	n, err := f.c.Get(ctx, f.seqKey(streamName(s))).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("feed last seq %s: %w: %v", s, ErrUnavailable, err)
	}
	return n, nil
}

// Range implements logs.Backlog with XRANGE from "<afterSeq+1>-0".
func (f *Feed) Range(ctx context.Context, s logs.Stream, afterSeq int64, since time.Time, limit int) ([]logs.Entry, error) {
	key := f.streamKey(streamName(s))
	start := strconv.FormatInt(afterSeq+1, 10)
	var out []logs.Entry
	for {
		page := int64(1000)
		ms, err := f.c.XRangeN(ctx, key, start, "+", page).Result()
		if err != nil {
			return nil, fmt.Errorf("feed range %s: %w: %v", s, ErrUnavailable, err)
		}
		for _, m := range ms {
			e, err := f.decode(s, m)
			if err != nil {
				if f.withhold(s, m, err) {
					continue
				}
				return nil, err
			}
			if !since.IsZero() && e.Time.Before(since) {
				continue
			}
			out = append(out, e)
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
		if int64(len(ms)) < page {
			return out, nil
		}
		start = "(" + ms[len(ms)-1].ID
	}
}

// Streams implements logs.StreamLister.
func (f *Feed) Streams(ctx context.Context) ([]logs.Stream, error) {
	names, err := f.c.SMembers(ctx, f.registryKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("feed streams: %w: %v", ErrUnavailable, err)
	}
	var out []logs.Stream
	for _, n := range names {
		if s, ok := parseStreamName(n); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// Healthy returns nil while the reader is connected, else why not.
func (f *Feed) Healthy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *Feed) setHealth(err error) (changed bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed = (f.health == nil) != (err == nil)
	f.health = err
	return changed
}

// groupByStream lists the streams of entries in first-seen order, with the
// indexes of each stream's entries, so a publish appends one stream at a time
// and keeps each stream's order.
func groupByStream(entries []logs.Entry) ([]logs.Stream, map[logs.Stream][]int) {
	var order []logs.Stream
	idx := map[logs.Stream][]int{}
	for i := range entries {
		s := entries[i].Stream()
		if _, ok := idx[s]; !ok {
			order = append(order, s)
		}
		idx[s] = append(idx[s], i)
	}
	return order, idx
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// With FeedConfig.Keys, entries are sealed (seal.Ring) with their stream
// and seq as authenticated data and stored in field "x" instead of "e".
// The seq must be known before sealing, while Redis assigns it: the
// publisher seals for the seq it expects and the script appends only if the
// stream's counter still matches, else it answers the counter and the
// publisher seals again (replicas rarely race on one stream). Entries in
// clear ("e", written before encryption was turned on) stay readable.

// publishSealedScript appends ARGV[4..] (sealed) to the stream KEYS[2] as
// seqs ARGV[3], ARGV[3]+1, ... if the counter KEYS[1] is ARGV[3]-1; it
// registers the stream as publishScript does. It returns {1, first} or, on
// a counter mismatch, {0, counter}.
const publishSealedScript = `
local n = #ARGV - 3
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local first = tonumber(ARGV[3])
if last + 1 ~= first then
  return {0, last}
end
redis.call('SET', KEYS[1], last + n)
for i = 1, n do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], string.format('%d-0', first + i - 1), 'x', ARGV[i + 3])
end
if redis.call('SADD', KEYS[3], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 's', ARGV[2])
end
return {1, first}
`

// maxSealRetries bounds how often a publish re-seals after losing a race.
const maxSealRetries = 64

// publishSealed is Publish with sealing.
func (f *Feed) publishSealed(ctx context.Context, entries []logs.Entry) ([]logs.Entry, error) {
	order, idx := groupByStream(entries)
	for _, s := range order {
		if err := f.publishSealedStream(ctx, s, entries, idx[s]); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

func (f *Feed) publishSealedStream(ctx context.Context, s logs.Stream, entries []logs.Entry, is []int) error {
	name := streamName(s)
	maxLen := f.retention(s.Env).MaxEntries
	if maxLen <= 0 {
		maxLen = logs.DefaultMaxEntries
	}
	plain := make([][]byte, len(is))
	size := 0
	for j, i := range is {
		b, err := encodeEntry(&entries[i])
		if err != nil {
			return fmt.Errorf("feed publish: encode entry: %w", err)
		}
		plain[j] = b
		size += len(b) + seal.Overhead
	}
	keys := []string{f.seqKey(name), f.streamKey(name), f.registryKey(), f.announceKey()}
	first := f.expectSeq(name)
	// The batch is sealed into one buffer; a retry seals it again for
	// the new seqs into a fresh one (the last attempt's args may still
	// be referenced by the client).
	args := make([]any, 0, len(is)+3)
	for range maxSealRetries {
		args = append(args[:0], maxLen, name, first)
		buf := make([]byte, 0, size)
		for j := range plain {
			start := len(buf)
			buf = f.ring.Seal(buf, plain[j], s.Service, s.Env, first+int64(j))
			args = append(args, buf[start:len(buf):len(buf)])
		}
		res, err := f.sealedScript.Run(ctx, f.c, keys, args...).Int64Slice()
		if err != nil || len(res) != 2 {
			return fmt.Errorf("feed publish %s: %w: %v", s, ErrUnavailable, err)
		}
		if res[0] == 1 {
			for j, i := range is {
				entries[i].Seq = first + int64(j)
			}
			f.sawSeq(name, first+int64(len(is))-1)
			return nil
		}
		first = res[1] + 1
	}
	return fmt.Errorf("feed publish %s: %w: lost the seq race %d times", s, ErrUnavailable, maxSealRetries)
}

// expectSeq guesses the next seq of a stream from what this replica saw.
func (f *Feed) expectSeq(name string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastSeen[name] + 1
}

func (f *Feed) sawSeq(name string, seq int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lastSeen == nil {
		f.lastSeen = map[string]int64{}
	}
	if seq > f.lastSeen[name] {
		f.lastSeen[name] = seq
	}
}

// decode turns a stream message into an entry, opening it when sealed.
func (f *Feed) decode(s logs.Stream, m redis.XMessage) (logs.Entry, error) {
	sealed, ok := m.Values["x"].(string)
	if !ok {
		return decodeMessage(s, m)
	}
	if f.ring == nil {
		id, _ := seal.KeyID([]byte(sealed))
		return logs.Entry{}, fmt.Errorf("feed: stream %s id %s: sealed with key %s: %w", s, m.ID, id, errNoKeys)
	}
	e, err := decodeMessage(s, redis.XMessage{ID: m.ID, Values: map[string]any{"e": "{}"}})
	if err != nil {
		return logs.Entry{}, err
	}
	plain, err := f.ring.Open(nil, []byte(sealed), s.Service, s.Env, e.Seq)
	if err != nil {
		return logs.Entry{}, fmt.Errorf("feed: stream %s seq %d withheld: %w", s, e.Seq, err)
	}
	return decodeMessage(s, redis.XMessage{ID: m.ID, Values: map[string]any{"e": string(plain)}})
}

// CheckKeys fails, naming the key, when the oldest or newest entry of a
// stream was sealed with a key the feed lacks (or the feed has none), so a
// replica started with the wrong key file stops instead of hiding the
// backlog. Keys are used newest first, so a stream's two ends show the
// oldest and newest key it needs.
func (f *Feed) CheckKeys(ctx context.Context) error {
	streams, err := f.Streams(ctx)
	if err != nil {
		return err
	}
	for _, s := range streams {
		key := f.streamKey(streamName(s))
		var ends []redis.XMessage
		for _, q := range []func() ([]redis.XMessage, error){
			func() ([]redis.XMessage, error) { return f.c.XRangeN(ctx, key, "-", "+", 1).Result() },
			func() ([]redis.XMessage, error) { return f.c.XRevRangeN(ctx, key, "+", "-", 1).Result() },
		} {
			ms, err := q()
			if err != nil {
				return fmt.Errorf("feed keys %s: %w: %v", s, ErrUnavailable, err)
			}
			ends = append(ends, ms...)
		}
		for _, m := range ends {
			sealed, ok := m.Values["x"].(string)
			if !ok {
				continue
			}
			id, _ := seal.KeyID([]byte(sealed))
			if f.ring == nil {
				return fmt.Errorf("log feed %s holds entries sealed with key %s, and no key file is given: %w",
					s, id, &seal.UnknownKeyError{ID: id})
			}
			if !f.ring.Has(id) {
				return fmt.Errorf("log feed %s holds entries sealed with key %s; the key file has %s: %w",
					s, id, strings.Join(f.ring.IDs(), ", "), &seal.UnknownKeyError{ID: id})
			}
		}
	}
	return nil
}

// errNoKeys is returned by KeyUse without a ring.
var errNoKeys = errors.New("feed has no key file")

// KeyUse counts the retained entries per key id ("" for entries in
// clear). Redis stream entries cannot be rewritten in place, so a rotated
// feed is not re-sealed: old entries age out with retention, and an old
// key may leave the key file once KeyUse no longer lists it.
func (f *Feed) KeyUse(ctx context.Context) (map[string]int, error) {
	if f.ring == nil {
		return nil, errNoKeys
	}
	streams, err := f.Streams(ctx)
	if err != nil {
		return nil, err
	}
	use := map[string]int{}
	for _, s := range streams {
		key := f.streamKey(streamName(s))
		start := "-"
		for {
			ms, err := f.c.XRangeN(ctx, key, start, "+", 1000).Result()
			if err != nil {
				return nil, fmt.Errorf("feed key use %s: %w: %v", s, ErrUnavailable, err)
			}
			for _, m := range ms {
				sealed, _ := m.Values["x"].(string)
				id, _ := seal.KeyID([]byte(sealed))
				use[id]++
			}
			if len(ms) < 1000 {
				break
			}
			start = "(" + ms[len(ms)-1].ID
		}
	}
	return use, nil
}

// withhold logs a sealed entry that does not open (never its content) and
// reports whether err was that; such an entry is skipped, so viewers see a
// gap instead of it.
func (f *Feed) withhold(s logs.Stream, m redis.XMessage, err error) bool {
	if !errors.Is(err, seal.ErrNotAuthentic) && !errors.Is(err, seal.ErrUnknownKey) && !errors.Is(err, seal.ErrNotSealed) && !errors.Is(err, errNoKeys) {
		return false
	}
	f.log.Error("log feed entry withheld: it does not open for its stream and position", "stream", s.String(), "id", m.ID, "err", err)
	return true
}

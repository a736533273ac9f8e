package cluster

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
)

// Audit is the audit trail shared by replicas: one gapless hash-chained
// sequence in a Redis Stream. Records have the format of the SQLite store
// (gateway/audit): `{"seq":N,"prev_hash":"<hex>",...}` with
// hash = SHA-256(prev hash || record), the first prev hash being 32 zero
// bytes. The stream entry id is "<seq>-0".
//
// Append builds the record for the head it read and commits it with a Lua
// script that checks the head is unchanged (seq and hash) and then, in one
// atomic step, XADDs the record and moves the head; when another replica
// appended first it reads the new head and tries again. With appendfsync
// always, a successful Append is on disk.
//
// Search, Get (through an id index) and Export scan the stream: fine for
// the sizes tests and small deployments reach, linear in the trail's
// length for filtered searches. The RFC 6962 Merkle tree over the records
// is kept beside them (audit_tree.go), written by the same script, and
// with a signing key every append signs a checkpoint of it, so Proof and
// LatestCheckpoint work as on the SQLite store.
//
// Keys under Prefix: <p>audit (stream), <p>audit:head (hash: seq, hash,
// tree, cp), <p>audit:ids (hash: event id -> seq), <p>audit:tree (hash:
// tree storage index -> hash).
type Audit struct {
	c      *redis.Client
	prefix string
	now    func() time.Time
	log    *slog.Logger
	append *redis.Script
	signer *audit.Signer // nil: no checkpoints or proofs
	mu     sync.Mutex    // serialises this replica's appends (fewer lost races)
	// replica is this replica's stable id (AuditConfig.ReplicaID).
	replica string
}

// AuditConfig configures an Audit.
type AuditConfig struct {
	// Client is the Redis connection (required; not closed by Audit).
	Client *redis.Client
	// Prefix namespaces the keys; zero means "loggate:".
	Prefix string
	// Now stamps events without a time; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
	// SigningKey signs a checkpoint of the Merkle tree with every append
	// (every replica must use the same key; see LoadSigningKey). Nil: the
	// tree is kept but Proof and LatestCheckpoint return ErrNotSupported.
	SigningKey ed25519.PrivateKey
	// Origin names the log in checkpoints. Zero: audit.DefaultOrigin.
	Origin string
	// ReplicaID is this replica's stable identity (it must survive a
	// restart and differ between replicas). OpenViews reports only views
	// whose stream.opened carries it as details.replica. Zero: OpenViews
	// reports none.
	ReplicaID string
}

// ErrNotSupported reports an audit feature the Redis trail lacks.
var ErrNotSupported = errors.New("not supported with Redis yet")

// appendScript: KEYS stream, head, ids, tree; ARGV expected seq, expected
// hash, record, new hash, event id, signed checkpoint ("" for none), "1"
// when the trail keeps a tree, then tree index/hash pairs. Returns 1, or 0
// when the head moved.
const appendScript = `
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
local h = redis.call('HGET', KEYS[2], 'hash') or ''
if seq ~= tonumber(ARGV[1]) or h ~= ARGV[2] then
  return 0
end
if redis.call('HSETNX', KEYS[3], ARGV[5], seq + 1) == 0 then
  return redis.error_reply('duplicate event id')
end
redis.call('XADD', KEYS[1], string.format('%d-0', seq + 1), 'r', ARGV[3], 'h', ARGV[4])
redis.call('HSET', KEYS[2], 'seq', seq + 1, 'hash', ARGV[4])
if ARGV[7] == '1' then
  for i = 8, #ARGV, 2 do
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', KEYS[2], 'tree', '1')
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[2], 'cp', ARGV[6])
end
return 1
`

// NewAudit validates cfg.
func NewAudit(cfg AuditConfig) (*Audit, error) {
	if cfg.Client == nil {
		return nil, errors.New("cluster audit: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "loggate:"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Audit{c: cfg.Client, prefix: cfg.Prefix, now: cfg.Now, log: cfg.Logger, append: redis.NewScript(appendScript),
		replica: cfg.ReplicaID}
	if cfg.SigningKey != nil {
		if cfg.Origin == "" {
			cfg.Origin = audit.DefaultOrigin
		}
		var err error
		if a.signer, err = audit.NewSigner(cfg.SigningKey, cfg.Origin); err != nil {
			return nil, fmt.Errorf("cluster audit: %w", err)
		}
	}
	return a, nil
}

func (a *Audit) streamKey() string { return a.prefix + "audit" }
func (a *Audit) headKey() string   { return a.prefix + "audit:head" }
func (a *Audit) idsKey() string    { return a.prefix + "audit:ids" }

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: redis %s: %v", audit.ErrUnavailable, what, err)
}

// Append implements gateway.Auditor: it assigns ID (when empty), Seq, Time
// (when zero), Schema, PrevHash and Hash and returns the stored event once
// Redis acknowledged it. Errors wrap audit.ErrUnavailable (fail closed) or
// audit.ErrInvalid.
func (a *Audit) Append(ctx context.Context, ev audit.Event) (audit.Event, error) {
	if err := audit.Validate(&ev); err != nil {
		return audit.Event{}, err
	}
	if ev.ID == "" {
		ev.ID = audit.NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = a.now()
	}
	ev.Time = ev.Time.UTC()
	ev.Schema = audit.SchemaVersion
	tail, err := audit.EncodeTail(&ev)
	if err != nil {
		return audit.Event{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; ; attempt++ {
		head, err := a.c.HMGet(ctx, a.headKey(), "seq", "hash", "tree").Result()
		if err != nil {
			return audit.Event{}, unavailable("read head", err)
		}
		var seq int64
		var prevHex string
		if s, ok := head[0].(string); ok {
			seq, _ = strconv.ParseInt(s, 10, 64)
		}
		if h, ok := head[1].(string); ok {
			prevHex = h
		}
		prev := [32]byte{}
		if prevHex != "" {
			if _, err := hex.Decode(prev[:], []byte(prevHex)); err != nil {
				return audit.Event{}, fmt.Errorf("%w: chain head hash %q", audit.ErrTampered, prevHex)
			}
		}
		rec := audit.BuildRecord(seq+1, prev, tail)
		sum := audit.ChainHash(prev, rec)
		newHex := hex.EncodeToString(sum[:])
		args := []any{seq, prevHex, rec, newHex, ev.ID}
		if t, _ := head[2].(string); seq == 0 || t == "1" {
			cp, pairs, err := a.treeAppend(ctx, seq, rec)
			if err != nil {
				return audit.Event{}, fmt.Errorf("audit append: %w", err)
			}
			args = append(append(args, cp, "1"), pairs...)
		} else {
			args = append(args, "", "")
		}
		ok, err := a.append.Run(ctx, a.c, []string{a.streamKey(), a.headKey(), a.idsKey(), a.treeKey()}, args...).Int()
		if err != nil {
			if strings.Contains(err.Error(), "duplicate event id") {
				// Either a caller reused an id, or an earlier attempt of this
				// Append landed and only its reply was lost (a retry after a
				// network error): then the stored event is ours.
				if got, gerr := a.Get(ctx, ev.ID); gerr == nil && sameEvent(got, ev) {
					return got, nil
				}
				return audit.Event{}, fmt.Errorf("%w: event id %s exists", audit.ErrInvalid, ev.ID)
			}
			return audit.Event{}, unavailable("append", err)
		}
		if ok == 1 {
			ev.Seq, ev.PrevHash, ev.Hash = seq+1, hex.EncodeToString(prev[:]), newHex
			return ev, nil
		}
		if attempt > 1000 {
			return audit.Event{}, unavailable("append", errors.New("lost 1000 races for the chain head"))
		}
	}
}

// sameEvent reports whether stored is ev as Append would have written it.
func sameEvent(stored, ev audit.Event) bool {
	a, err1 := audit.EncodeTail(&stored)
	b, err2 := audit.EncodeTail(&ev)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// stored is one record as kept in the stream.
type stored struct {
	seq  int64
	rec  []byte
	hash string
}

func parseStored(m redis.XMessage) (stored, error) {
	ms, _, _ := strings.Cut(m.ID, "-")
	seq, err := strconv.ParseInt(ms, 10, 64)
	r, _ := m.Values["r"].(string)
	h, _ := m.Values["h"].(string)
	if err != nil || r == "" {
		return stored{}, fmt.Errorf("%w: malformed audit stream entry %s", audit.ErrTampered, m.ID)
	}
	return stored{seq: seq, rec: []byte(r), hash: h}, nil
}

func (s stored) event() (audit.Event, error) {
	h, err := hex.DecodeString(s.hash)
	if err != nil {
		return audit.Event{}, fmt.Errorf("%w: event seq %d: malformed hash", audit.ErrTampered, s.seq)
	}
	ev, err := audit.DecodeRecord(s.rec, h)
	if err != nil {
		return audit.Event{}, fmt.Errorf("%w: event seq %d: %v", audit.ErrTampered, s.seq, err)
	}
	return ev, nil
}

// scan calls fn for stored records, newest first (rev) or oldest first,
// starting after (or before, with rev) the seq bound (0: from the end).
func (a *Audit) scan(ctx context.Context, rev bool, bound int64, fn func(stored) (bool, error)) error {
	const page = 500
	var start, end string
	if rev {
		start, end = "+", "-"
		if bound > 0 {
			start = "(" + strconv.FormatInt(bound, 10) + "-0"
		}
	} else {
		start, end = "-", "+"
		if bound > 0 {
			start = "(" + strconv.FormatInt(bound, 10) + "-0"
		}
	}
	for {
		var ms []redis.XMessage
		var err error
		if rev {
			ms, err = a.c.XRevRangeN(ctx, a.streamKey(), start, end, page).Result()
		} else {
			ms, err = a.c.XRangeN(ctx, a.streamKey(), start, end, page).Result()
		}
		if err != nil {
			return unavailable("read", err)
		}
		for _, m := range ms {
			s, err := parseStored(m)
			if err != nil {
				return err
			}
			more, err := fn(s)
			if err != nil || !more {
				return err
			}
		}
		if len(ms) < page {
			return nil
		}
		start = "(" + ms[len(ms)-1].ID
	}
}

// Search implements gateway.Auditor (newest first, by scanning).
func (a *Audit) Search(ctx context.Context, q audit.Query) (audit.Page, error) {
	var before int64
	if q.Cursor != "" {
		var err error
		if before, err = audit.DecodeCursor(q.Cursor); err != nil {
			return audit.Page{}, fmt.Errorf("audit search: %w", err)
		}
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = audit.DefaultLimit
	case limit > audit.MaxLimit:
		limit = audit.MaxLimit
	}
	page := audit.Page{Items: []audit.Event{}}
	err := a.scan(ctx, true, before, func(s stored) (bool, error) {
		ev, err := s.event()
		if err != nil {
			return false, err
		}
		if !q.Matches(&ev) {
			return true, nil
		}
		if len(page.Items) == limit {
			page.NextCursor = audit.EncodeCursor(page.Items[limit-1].Seq)
			return false, nil
		}
		page.Items = append(page.Items, ev)
		return true, nil
	})
	if err != nil {
		return audit.Page{}, fmt.Errorf("audit search: %w", err)
	}
	return page, nil
}

// Get implements gateway.Auditor.
func (a *Audit) Get(ctx context.Context, id string) (audit.Event, error) {
	seq, err := a.c.HGet(ctx, a.idsKey(), id).Int64()
	if errors.Is(err, redis.Nil) {
		return audit.Event{}, fmt.Errorf("audit get %s: %w", id, audit.ErrNotFound)
	}
	if err != nil {
		return audit.Event{}, fmt.Errorf("audit get: %w", unavailable("read", err))
	}
	id0 := strconv.FormatInt(seq, 10) + "-0"
	ms, err := a.c.XRange(ctx, a.streamKey(), id0, id0).Result()
	if err != nil {
		return audit.Event{}, fmt.Errorf("audit get: %w", unavailable("read", err))
	}
	if len(ms) != 1 {
		return audit.Event{}, fmt.Errorf("audit get %s: %w: indexed at seq %d but missing", id, audit.ErrTampered, seq)
	}
	s, err := parseStored(ms[0])
	if err != nil {
		return audit.Event{}, err
	}
	return s.event()
}

// Ping checks that Redis answers.
func (a *Audit) Ping(ctx context.Context) error {
	if err := a.c.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

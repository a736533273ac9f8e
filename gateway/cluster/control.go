package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Message is a control event between replicas.
type Message struct {
	// Replica is the sender's id; a replica ignores its own messages.
	Replica   string    `json:"replica"`
	Kind      string    `json:"kind"`
	GrantID   string    `json:"grant_id"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Sent is the sender's clock when it published (for latency metrics).
	Sent time.Time `json:"sent"`
	// Payload carries a kind's own document (e.g. a replica's raised-level
	// views), opaque to this package; nil for most kinds.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// ControlConfig configures a Control.
type ControlConfig struct {
	// Client is the Redis connection (required; not closed by Control).
	Client *redis.Client
	// Prefix namespaces the channel; zero means "loggate:".
	Prefix string
	// ReplicaID identifies this replica; zero means a random id.
	ReplicaID string
	// Now stamps Message.Sent; nil means time.Now.
	Now func() time.Time
	// Block is how long one XREAD waits; zero means 1s. It bounds how long
	// Subscribe takes to notice that its context ended, and how old the
	// confirmation of a healthy, quiet subscription gets (see Confirmed):
	// set it to a fraction of the staleness bound.
	Block time.Duration
	// CallTimeout is how much longer than Block a read may take before it
	// is abandoned as lost; zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// Logger receives connection problems; nil discards them.
	Logger *slog.Logger
	// MaxLen caps the stream's length (exactly); zero means about 10,000
	// (approximate trimming, which Redis does cheaply).
	MaxLen int64
}

// Control broadcasts control messages to the other replicas through a
// Redis Stream (<prefix>control) rather than pub/sub, so a replica that
// loses its connection for a moment still gets every revocation sent
// meanwhile when it reconnects.
type Control struct {
	c           *redis.Client
	stream      string
	block       time.Duration
	callTimeout time.Duration
	id          string
	now         func() time.Time
	log         *slog.Logger
	maxLen      int64
	approx      bool

	// trimmed is set (trimFound) when Subscribe finds, after a break, that
	// messages it had not read yet were trimmed from the stream: they are
	// lost to this replica. The next call of Fresh reports it (trimReported;
	// the caller ends its tails) and the one after clears it; Sync refuses
	// until then, so nothing reaches a tail before it is ended.
	trimmed atomic.Int32

	// confirmed is the c.now() (unix nanos) at which the last read that
	// confirmed this replica is up to date was issued; 0 before the first.
	confirmed atomic.Int64

	// mu guards applied and moved; taken with no other lock.
	mu      sync.Mutex
	applied streamID      // the last message Subscribe has given to fn (or skipped)
	moved   chan struct{} // closed and replaced whenever applied advances
}

// NewControl validates cfg.
func NewControl(cfg ControlConfig) (*Control, error) {
	if cfg.Client == nil {
		return nil, errors.New("cluster control: Client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "loggate:"
	}
	if cfg.ReplicaID == "" {
		cfg.ReplicaID = NewReplicaID()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Block <= 0 {
		cfg.Block = time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	maxLen, approx := cfg.MaxLen, false
	if maxLen <= 0 {
		maxLen, approx = 10000, true
	}
	return &Control{c: cfg.Client, stream: cfg.Prefix + "control", block: cfg.Block, callTimeout: cfg.CallTimeout,
		id: cfg.ReplicaID, now: cfg.Now, log: cfg.Logger, maxLen: maxLen, approx: approx, moved: make(chan struct{})}, nil
}

// NewReplicaID returns a random replica id.
func NewReplicaID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReplicaID returns this replica's id.
func (c *Control) ReplicaID() string { return c.id }

// Publish sends a control message to every other replica: it is appended
// to the control stream (capped at about 10,000 messages).
func (c *Control) Publish(ctx context.Context, kind, grantID, reason string, expiresAt time.Time) error {
	return c.publish(ctx, Message{Replica: c.id, Kind: kind, GrantID: grantID, Reason: reason, ExpiresAt: expiresAt})
}

// PublishPayload sends a message of kind carrying payload (a JSON value)
// to every other replica.
func (c *Control) PublishPayload(ctx context.Context, kind string, payload json.RawMessage) error {
	return c.publish(ctx, Message{Replica: c.id, Kind: kind, Payload: payload})
}

func (c *Control) publish(ctx context.Context, m Message) error {
	m.Sent = c.now()
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("publish control message: %w", err)
	}
	err = c.c.XAdd(ctx, &redis.XAddArgs{Stream: c.stream, MaxLen: c.maxLen, Approx: c.approx, Values: []any{"m", b}}).Err()
	if err != nil {
		return fmt.Errorf("publish control message: %w: %v", ErrUnavailable, err)
	}
	return nil
}

// Subscribe delivers the other replicas' messages to fn, in order, until
// ctx ends. It reads the control stream from its end at the time of the
// call; after a connection loss it resumes where it stopped, so messages
// sent meanwhile (by replicas that could reach Redis) are not lost. fn runs
// on this goroutine and must not block for long. ready, if non-nil, is
// closed once the starting position is known (Redis reached).
//
// Each read also confirms this replica is up to date (see Confirmed): a
// blocking XREAD that answers with fewer messages than it asked for, or
// none, says the stream held nothing more when Redis answered, so every
// message appended before the read was sent has now been given to fn.
// Being connected is not enough: the answer must arrive.
func (c *Control) Subscribe(ctx context.Context, ready chan<- struct{}, fn func(Message)) error {
	const count = 100
	last := ""
	broke := false // a read failed since the last good one
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if broke && last != "" {
			lost, err := c.lostSince(ctx, last)
			if err != nil {
				c.wait(ctx, &backoff, err)
				continue
			}
			broke = false
			if lost {
				c.trimmed.Store(trimFound)
				c.log.Error("control messages were trimmed from the stream before this replica read them; ending its tails",
					"last_read", last)
			}
		}
		if last == "" {
			sent := c.now()
			rctx, cancel := context.WithTimeout(Background(ctx), c.callTimeout)
			ms, err := c.c.XRevRangeN(rctx, c.stream, "+", "-", 1).Result()
			cancel()
			if err != nil {
				c.wait(ctx, &backoff, err)
				continue
			}
			last = "0-0"
			if len(ms) == 1 {
				last = ms[0].ID
			}
			c.advance(last)
			c.confirm(sent)
			if ready != nil {
				close(ready)
				ready = nil
			}
		}
		sent := c.now()
		rctx, cancel := context.WithTimeout(Background(ctx), c.block+c.callTimeout)
		res, err := c.c.XRead(rctx, &redis.XReadArgs{Streams: []string{c.stream, last}, Count: count, Block: c.block}).Result()
		cancel()
		if errors.Is(err, redis.Nil) {
			c.confirm(sent)
			backoff = 50 * time.Millisecond
			continue
		}
		if err != nil {
			broke = true
			c.wait(ctx, &backoff, err)
			continue
		}
		backoff = 50 * time.Millisecond
		n := 0
		for _, xs := range res {
			for _, m := range xs.Messages {
				n++
				last = m.ID
				raw, _ := m.Values["m"].(string)
				var msg Message
				if err := json.Unmarshal([]byte(raw), &msg); err != nil {
					c.log.Warn("ignoring malformed control message", "id", m.ID, "err", err)
					continue
				}
				if msg.Replica != c.id {
					fn(msg)
				}
			}
		}
		c.advance(last)
		if n < count {
			c.confirm(sent)
		}
	}
	return nil
}

const (
	trimFound    = 1
	trimReported = 2
)

// lostSince reports whether messages after last were removed before this
// replica read them. Trimming removes the oldest entries, so a position
// still in the stream has lost nothing; one no longer there has (Redis
// also keeps the largest id XDEL removed, checked too). "0-0", an empty
// stream at the start, lost something if more was added than is kept.
func (c *Control) lostSince(ctx context.Context, last string) (bool, error) {
	rctx, cancel := context.WithTimeout(Background(ctx), c.callTimeout)
	defer cancel()
	pos, ok := parseStreamID(last)
	if !ok {
		return false, fmt.Errorf("control: bad position %q", last)
	}
	info, err := c.c.XInfoStream(rctx, c.stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return pos != streamID{}, nil // the stream is gone, and all after last with it
		}
		return false, err
	}
	if del, ok := parseStreamID(info.MaxDeletedEntryID); ok && pos.less(del) {
		return true, nil
	}
	if pos == (streamID{}) {
		return info.EntriesAdded > info.Length, nil
	}
	ms, err := c.c.XRangeN(rctx, c.stream, last, last, 1).Result()
	if err != nil {
		return false, err
	}
	return len(ms) == 0, nil
}

// advance records that every message up to id has been given to fn.
func (c *Control) advance(id string) {
	sid, ok := parseStreamID(id)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.applied.less(sid) {
		c.applied = sid
		close(c.moved)
		c.moved = make(chan struct{})
	}
}

// Sync returns nil once every control message appended to the stream
// before Sync was called has been given to Subscribe's fn: the feed calls
// it before handing entries to viewers, so an entry ingested after a
// revocation never reaches a viewer before the revocation does. It asks
// Redis for the newest message id and waits for Subscribe to pass it; an
// error (Redis unreachable, or Subscribe not there within the call
// timeout) wraps ErrUnavailable, and the caller must not deliver.
func (c *Control) Sync(ctx context.Context) error {
	if c.trimmed.Load() != 0 {
		return fmt.Errorf("%w: control sync: messages were trimmed before this replica read them", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(Background(ctx), c.callTimeout+c.block)
	defer cancel()
	ms, err := c.c.XRevRangeN(ctx, c.stream, "+", "-", 1).Result()
	if err != nil {
		return fmt.Errorf("%w: control sync: %v", ErrUnavailable, err)
	}
	if len(ms) == 0 {
		return nil
	}
	want, ok := parseStreamID(ms[0].ID)
	if !ok {
		return fmt.Errorf("%w: control sync: bad id %q", ErrUnavailable, ms[0].ID)
	}
	for {
		c.mu.Lock()
		done, moved := !c.applied.less(want), c.moved
		c.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("%w: control sync: subscription behind: %v", ErrUnavailable, ctx.Err())
		}
	}
}

// streamID is a Redis Stream entry id, "<ms>-<seq>".
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, bool) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return streamID{}, false
	}
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	return streamID{ms, seq}, err1 == nil && err2 == nil
}

func (a streamID) less(b streamID) bool { return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq) }

func (c *Control) confirm(at time.Time) {
	n := at.UnixNano()
	for {
		old := c.confirmed.Load()
		if old >= n || c.confirmed.CompareAndSwap(old, n) {
			return
		}
	}
}

// Confirmed returns the time (by Now) up to which this replica has seen
// every control message: each message whose append finished before it has
// been given to Subscribe's fn. Zero until Subscribe first reaches Redis.
func (c *Control) Confirmed() time.Time {
	n := c.confirmed.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// ErrTrimmed is wrapped (with ErrStale) by Fresh's error when control
// messages were trimmed from the stream before this replica read them: they
// are lost to it, not just late. Its ControlLost method says so to the
// gateway (which does not import this package; see SetControlStale).
var ErrTrimmed error = trimmedError{}

type trimmedError struct{}

func (trimmedError) Error() string {
	return "control messages were trimmed from the stream before this replica read them"
}

// ControlLost reports that control messages were lost.
func (trimmedError) ControlLost() bool { return true }

// ErrStale reports that a replica cannot confirm it has seen every control
// message within its staleness bound.
var ErrStale = errors.New("control stream not confirmed")

// Fresh returns nil when Confirmed is within bound of now, else an error
// wrapping ErrStale that says for how long.
//
// After Subscribe found messages trimmed before it read them, the next two
// calls say so: the caller ends its tails, since one of the lost messages
// may have been a revocation, and tails admitted after that check the
// shared state again.
func (c *Control) Fresh(bound time.Duration) error {
	if c.trimmed.CompareAndSwap(trimFound, trimReported) || c.trimmed.CompareAndSwap(trimReported, 0) {
		return fmt.Errorf("%w: %w", ErrStale, ErrTrimmed)
	}
	at := c.Confirmed()
	if at.IsZero() {
		return fmt.Errorf("%w: never reached", ErrStale)
	}
	if age := c.now().Sub(at); age > bound {
		return fmt.Errorf("%w for %s (bound %s)", ErrStale, age.Round(time.Millisecond), bound)
	}
	return nil
}

func (c *Control) wait(ctx context.Context, backoff *time.Duration, err error) {
	if ctx.Err() != nil {
		return
	}
	c.log.Warn("control stream unreachable; retrying", "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, max(c.block/2, 50*time.Millisecond))
}

// ErrUnavailable reports that Redis could not be reached.
var ErrUnavailable = errors.New("redis unavailable")

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// Subscribe takes to notice that its context ended.
	Block time.Duration
	// Logger receives connection problems; nil discards them.
	Logger *slog.Logger
}

// Control broadcasts control messages to the other replicas through a
// Redis Stream (<prefix>control) rather than pub/sub, so a replica that
// loses its connection for a moment still gets every revocation sent
// meanwhile when it reconnects.
type Control struct {
	c      *redis.Client
	stream string
	block  time.Duration
	id     string
	now    func() time.Time
	log    *slog.Logger
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
	return &Control{c: cfg.Client, stream: cfg.Prefix + "control", block: cfg.Block, id: cfg.ReplicaID, now: cfg.Now, log: cfg.Logger}, nil
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
	err = c.c.XAdd(ctx, &redis.XAddArgs{Stream: c.stream, MaxLen: 10000, Approx: true, Values: []any{"m", b}}).Err()
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
func (c *Control) Subscribe(ctx context.Context, ready chan<- struct{}, fn func(Message)) error {
	last := ""
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		if last == "" {
			ms, err := c.c.XRevRangeN(ctx, c.stream, "+", "-", 1).Result()
			if err != nil {
				c.wait(ctx, &backoff, err)
				continue
			}
			last = "0-0"
			if len(ms) == 1 {
				last = ms[0].ID
			}
			if ready != nil {
				close(ready)
				ready = nil
			}
		}
		res, err := c.c.XRead(ctx, &redis.XReadArgs{Streams: []string{c.stream, last}, Count: 100, Block: c.block}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			c.wait(ctx, &backoff, err)
			continue
		}
		backoff = 50 * time.Millisecond
		for _, xs := range res {
			for _, m := range xs.Messages {
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
	*backoff = min(2**backoff, time.Second)
}

// ErrUnavailable reports that Redis could not be reached.
var ErrUnavailable = errors.New("redis unavailable")

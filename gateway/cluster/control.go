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
	// Logger receives connection problems; nil discards them.
	Logger *slog.Logger
}

// Control broadcasts control messages to the other replicas.
type Control struct {
	c       *redis.Client
	channel string
	id      string
	now     func() time.Time
	log     *slog.Logger
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
	return &Control{c: cfg.Client, channel: cfg.Prefix + "control", id: cfg.ReplicaID, now: cfg.Now, log: cfg.Logger}, nil
}

// NewReplicaID returns a random replica id.
func NewReplicaID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReplicaID returns this replica's id.
func (c *Control) ReplicaID() string { return c.id }

// Publish sends a control message to every other replica.
func (c *Control) Publish(ctx context.Context, kind, grantID, reason string, expiresAt time.Time) error {
	b, err := json.Marshal(Message{Replica: c.id, Kind: kind, GrantID: grantID, Reason: reason, ExpiresAt: expiresAt, Sent: c.now()})
	if err != nil {
		return fmt.Errorf("publish control message: %w", err)
	}
	if err := c.c.Publish(ctx, c.channel, b).Err(); err != nil {
		return fmt.Errorf("publish control message: %w: %v", ErrUnavailable, err)
	}
	return nil
}

// Subscribe delivers the other replicas' messages to fn until ctx ends,
// resubscribing after connection losses (messages sent while disconnected
// are lost: the gateway re-checks grants when tails resume, and a lost
// Redis ends every tail through the Feed). fn runs on one goroutine; it
// must not block for long. ready, if non-nil, is closed once subscribed.
func (c *Control) Subscribe(ctx context.Context, ready chan<- struct{}, fn func(Message)) error {
	ps := c.c.Subscribe(ctx, c.channel)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("control subscription not confirmed yet; retrying in the background", "err", err)
	}
	if ready != nil {
		close(ready)
	}
	ch := ps.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-ch:
			if !ok {
				return nil
			}
			var msg Message
			if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil {
				c.log.Warn("ignoring malformed control message", "err", err)
				continue
			}
			if msg.Replica == c.id {
				continue
			}
			fn(msg)
		}
	}
}

// ErrUnavailable reports that Redis could not be reached.
var ErrUnavailable = errors.New("redis unavailable")

package gateway

import (
	"context"
	"time"
)

// Control event kinds carried between replicas.
const (
	ControlRevoked  = "revoked"
	ControlExpired  = "expired"
	ControlExtended = "extended"
	// ControlPolicy tells other replicas that the policy files changed;
	// Reason carries the new revision.
	ControlPolicy = "policy"
	// ControlLevels carries the sender's raised-level views (Levels).
	ControlLevels = "levels"
)

// ControlEvent tells every replica about a change to live tails.
type ControlEvent struct {
	Kind      string    `json:"kind"`
	GrantID   string    `json:"grant_id"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// SessionID is the session handle of a ControlSessionEnded event.
	SessionID string `json:"session_id,omitempty"`
	// Levels is the sender's snapshot of a ControlLevels event.
	Levels *LevelSnapshot `json:"levels,omitempty"`
}

// Broadcaster carries control events to the other replicas. Publish must
// not deliver the event back to this replica's Apply: the gateway applies
// its own events locally.
type Broadcaster interface {
	Publish(ctx context.Context, ev ControlEvent) error
}

// Notifier queues a notification about an event for delivery.
type Notifier interface {
	Notify(ctx context.Context, kind string, payload map[string]any) error
}

// broadcast applies ev to this replica's tails and publishes it to others.
func (s *Server) broadcast(ctx context.Context, ev ControlEvent) {
	s.ApplyControl(ev)
	if s.cfg.Broadcast != nil {
		if err := s.cfg.Broadcast.Publish(ctx, ev); err != nil {
			s.log.Error("broadcast control event failed", "kind", ev.Kind, "grant", ev.GrantID, "err", err)
		}
	}
}

// ApplyControl delivers a control event (local or from another replica) to
// the live tails of its grant.
func (s *Server) ApplyControl(ev ControlEvent) {
	if ev.Kind == ControlPolicy {
		s.reloadPolicy(ev.Reason)
		return
	}
	switch ev.Kind {
	case ControlLevels:
		if ev.Levels != nil && ev.Levels.Replica != "" {
			s.levelChanges(context.Background(), s.levels.applyRemote(*ev.Levels, s.now()), true)
		}
		return
	case ControlRevoked, ControlExpired:
		s.levelChanges(context.Background(), s.levels.dropGrant(ev.GrantID, s.now()), false)
	case ControlExtended:
		s.levelChanges(context.Background(), s.levels.extend(ev.GrantID, ev.ExpiresAt, s.now()), false)
	}
	if ev.Kind == ControlSessionEnded {
		for _, t := range s.tails.forSession(ev.SessionID) {
			t.control(ev)
		}
		return
	}
	for _, t := range s.tails.forGrant(ev.GrantID) {
		t.control(ev)
	}
}

package gateway

import (
	"context"
	"sync"
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
)

// ControlEvent tells every replica about a change to live tails.
type ControlEvent struct {
	Kind      string    `json:"kind"`
	GrantID   string    `json:"grant_id"`
	Reason    string    `json:"reason,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
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
	for _, t := range s.tails.forGrant(ev.GrantID) {
		t.control(ev)
	}
}

// tailRegistry indexes live tail sessions by grant, user and stream.
type tailRegistry struct {
	mu      sync.Mutex
	byGrant map[string]map[*tailSession]struct{}
	byUser  map[string]int
	byStrm  map[string]int
}

func newTailRegistry() *tailRegistry {
	return &tailRegistry{byGrant: map[string]map[*tailSession]struct{}{}, byUser: map[string]int{}, byStrm: map[string]int{}}
}

// add registers t unless the per-user or per-stream limit is reached.
func (r *tailRegistry) add(t *tailSession, maxUser, maxStream int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byUser[t.user] >= maxUser || r.byStrm[t.stream] >= maxStream {
		return false
	}
	set := r.byGrant[t.grantID]
	if set == nil {
		set = map[*tailSession]struct{}{}
		r.byGrant[t.grantID] = set
	}
	set[t] = struct{}{}
	r.byUser[t.user]++
	r.byStrm[t.stream]++
	return true
}

func (r *tailRegistry) remove(t *tailSession) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.byGrant[t.grantID]
	if _, ok := set[t]; !ok {
		return
	}
	delete(set, t)
	if len(set) == 0 {
		delete(r.byGrant, t.grantID)
	}
	if r.byUser[t.user]--; r.byUser[t.user] <= 0 {
		delete(r.byUser, t.user)
	}
	if r.byStrm[t.stream]--; r.byStrm[t.stream] <= 0 {
		delete(r.byStrm, t.stream)
	}
}

func (r *tailRegistry) forGrant(id string) []*tailSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*tailSession, 0, len(r.byGrant[id]))
	for t := range r.byGrant[id] {
		out = append(out, t)
	}
	return out
}

func (r *tailRegistry) all() []*tailSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tailSession
	for _, set := range r.byGrant {
		for t := range set {
			out = append(out, t)
		}
	}
	return out
}

func (r *tailRegistry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, set := range r.byGrant {
		n += len(set)
	}
	return n
}

package gateway

import "sync"

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

// forSession returns the tails opened with the browser session whose handle is id.
func (r *tailRegistry) forSession(id string) []*tailSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tailSession
	for _, set := range r.byGrant {
		for t := range set {
			if id != "" && t.session == id {
				out = append(out, t)
			}
		}
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

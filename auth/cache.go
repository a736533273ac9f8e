package auth

import (
	"container/list"
	"sync"
	"time"
)

// tokenEntry is a verified bearer token's identity, trusted until until.
type tokenEntry struct {
	key       [32]byte
	id        Identity
	until     time.Time
	announced bool // auth.token already emitted for this token
}

// tokenCache is a bounded LRU of verified bearer tokens keyed by sha256(token).
// It saves the signature check on repeated requests and makes auth.token
// fire once per token rather than once per request.
type tokenCache struct {
	mu    sync.Mutex
	max   int
	ll    *list.List // front = most recent; values are *tokenEntry
	items map[[32]byte]*list.Element
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, ll: list.New(), items: make(map[[32]byte]*list.Element)}
}

// get returns a still-valid entry.
func (c *tokenCache) get(key [32]byte, now time.Time) (tokenEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return tokenEntry{}, false
	}
	e := el.Value.(*tokenEntry)
	if now.After(e.until) {
		return tokenEntry{}, false // kept so the announced flag survives re-verification
	}
	c.ll.MoveToFront(el)
	return *e, true
}

// put stores a freshly verified token, keeping the announced flag of an earlier entry.
func (c *tokenCache) put(key [32]byte, id Identity, until time.Time) tokenEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*tokenEntry)
		e.id, e.until = id, until
		c.ll.MoveToFront(el)
		return *e
	}
	e := &tokenEntry{key: key, id: id, until: until}
	c.items[key] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*tokenEntry).key)
	}
	return *e
}

func (c *tokenCache) markAnnounced(key [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*tokenEntry).announced = true
	}
}

// stateSet remembers login states already consumed, so a callback cannot be replayed.
type stateSet struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time // state hash -> flow expiry
}

func newStateSet(max int) *stateSet { return &stateSet{max: max, seen: make(map[string]time.Time)} }

// consume reports whether state was unused, and marks it used until exp.
func (s *stateSet) consume(state string, exp, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, used := s.seen[state]; used {
		return false
	}
	if len(s.seen) >= s.max {
		for k, e := range s.seen {
			if now.After(e) {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= s.max { // still full of live states: forget an arbitrary one
			for k := range s.seen {
				delete(s.seen, k)
				break
			}
		}
	}
	s.seen[state] = exp
	return true
}

package gateway

import (
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/loggate/loggate/gateway/logs"
)

// Debug on demand: while at least one view of a grant with a raised level
// is open (on any replica), the stream's services log at that level for
// the grant's scope. levelState holds those views and computes the level
// rules services receive on the control channel (levels_http.go).

// LevelView is one open view of a grant with a raised level, as replicas
// share it (ControlLevels events).
type LevelView struct {
	ViewID    string            `json:"view_id"`
	GrantID   string            `json:"grant_id"`
	Service   string            `json:"service"`
	Env       string            `json:"env"`
	Level     string            `json:"level"`
	Scope     map[string]string `json:"scope,omitempty"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// LevelSnapshot is every raised-level view open on one replica. Replicas
// publish theirs on every change and every levelHeartbeat; a replica whose
// snapshot is older than levelStale counts as gone.
type LevelSnapshot struct {
	Replica string      `json:"replica"`
	Views   []LevelView `json:"views"`
}

// LevelRule is what a service receives: log Level for records of the
// stream that match Scope (all of its attributes; none = every record).
type LevelRule struct {
	Service string            `json:"service"`
	Env     string            `json:"env"`
	Level   string            `json:"level"`
	Scope   map[string]string `json:"scope,omitempty"`
	// Grants are the grants whose open views hold the level raised.
	Grants []string `json:"grants"`
	// Since is when this rule came into force.
	Since time.Time `json:"since"`
}

const (
	levelHeartbeat = 5 * time.Second
	levelStale     = 3 * levelHeartbeat
)

// Kinds of levelChange.
const (
	levelEnabled  = "enabled"  // a rule appeared or its level changed
	levelDisabled = "disabled" // a rule disappeared
	levelGrants   = "grants"   // only the grants holding a rule changed
)

// levelChange is one change of the rules.
type levelChange struct {
	kind    string
	rule    LevelRule
	version uint64
	at      time.Time
}

// levelState is owned by the Server. mu guards every field; it is never
// held while calling out (audit, network).
type levelState struct {
	mu      sync.Mutex
	local   map[string]LevelView    // this replica's open views, by view id
	remote  map[string]remoteLevels // other replicas' views, by replica id
	rules   map[string]LevelRule    // in force, by ruleKey
	version uint64                  // bumped on every change of rules
	changed chan struct{}           // closed and replaced on every change
	subs    map[*levelSub]struct{}  // connected services
	acked   chan struct{}           // closed and replaced on every ack
	pollers map[string]*levelSub    // long-poll subscribers by instance id (also in subs)
}

type remoteLevels struct {
	views []LevelView
	seen  time.Time
}

// levelSub is one connected service instance. Its wake channel (capacity
// 1) says "rules changed"; acked is the last version it acknowledged.
type levelSub struct {
	instance string
	allows   func(service, env string) bool
	wake     chan struct{}
	acked    uint64 // guarded by levelState.mu
	ackedAt  time.Time
	longPoll bool
	seen     time.Time // long-poll: last poll
}

func newLevelState() *levelState {
	return &levelState{local: map[string]LevelView{}, remote: map[string]remoteLevels{},
		rules: map[string]LevelRule{}, changed: make(chan struct{}), subs: map[*levelSub]struct{}{},
		acked: make(chan struct{}), pollers: map[string]*levelSub{}}
}

func ruleKey(service, env, scope string) string { return service + "/" + env + "\x00" + scope }

// recompute derives the rules from the views alive at now and returns the
// changes; the caller holds mu.
func (l *levelState) recompute(now time.Time) []levelChange {
	next := map[string]LevelRule{}
	add := func(v LevelView) {
		if !now.Before(v.ExpiresAt) {
			return
		}
		k := ruleKey(v.Service, v.Env, scopeKey(v.Scope))
		r, ok := next[k]
		if !ok {
			r = LevelRule{Service: v.Service, Env: v.Env, Level: v.Level, Scope: v.Scope}
		}
		if logs.LevelRank(v.Level) < logs.LevelRank(r.Level) {
			r.Level = v.Level
		}
		if !slices.Contains(r.Grants, v.GrantID) {
			r.Grants = append(r.Grants, v.GrantID)
		}
		next[k] = r
	}
	for _, v := range l.local {
		add(v)
	}
	for id, rv := range l.remote {
		if now.Sub(rv.seen) > levelStale {
			delete(l.remote, id)
			continue
		}
		for _, v := range rv.views {
			add(v)
		}
	}
	var changes []levelChange
	for k, r := range next {
		sort.Strings(r.Grants)
		old, ok := l.rules[k]
		if ok {
			r.Since = old.Since
		} else {
			r.Since = now
		}
		next[k] = r
		switch {
		case !ok || old.Level != r.Level:
			changes = append(changes, levelChange{kind: levelEnabled, rule: r, at: now})
		case !slices.Equal(old.Grants, r.Grants):
			changes = append(changes, levelChange{kind: levelGrants, rule: r, at: now})
		}
	}
	for k, r := range l.rules {
		if _, ok := next[k]; !ok {
			changes = append(changes, levelChange{kind: levelDisabled, rule: r, at: now})
		}
	}
	if len(changes) == 0 {
		return nil
	}
	l.rules = next
	l.version++
	for i := range changes {
		changes[i].version = l.version
	}
	close(l.changed)
	l.changed = make(chan struct{})
	for sub := range l.subs {
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
	return changes
}

// open records a local view; it returns the changes it caused.
func (l *levelState) open(v LevelView, now time.Time) []levelChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.local[v.ViewID] = v
	return l.recompute(now)
}

// close forgets a local view.
func (l *levelState) close(viewID string, now time.Time) []levelChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.local[viewID]; !ok {
		return nil
	}
	delete(l.local, viewID)
	return l.recompute(now)
}

// extend moves the expiry of every view (local and remote) of a grant.
func (l *levelState) extend(grantID string, expiresAt time.Time, now time.Time) []levelChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, v := range l.local {
		if v.GrantID == grantID {
			v.ExpiresAt = expiresAt
			l.local[id] = v
		}
	}
	for _, rv := range l.remote {
		for i := range rv.views {
			if rv.views[i].GrantID == grantID {
				rv.views[i].ExpiresAt = expiresAt
			}
		}
	}
	return l.recompute(now)
}

// dropGrant forgets every view of a revoked or expired grant at once,
// before its tails have finished closing.
func (l *levelState) dropGrant(grantID string, now time.Time) []levelChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, v := range l.local {
		if v.GrantID == grantID {
			delete(l.local, id)
		}
	}
	for rid, rv := range l.remote {
		rv.views = slices.DeleteFunc(rv.views, func(v LevelView) bool { return v.GrantID == grantID })
		l.remote[rid] = rv
	}
	return l.recompute(now)
}

// applyRemote replaces another replica's views.
func (l *levelState) applyRemote(snap LevelSnapshot, now time.Time) []levelChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remote[snap.Replica] = remoteLevels{views: snap.Views, seen: now}
	return l.recompute(now)
}

// tick drops expired views, silent replicas and overdue pollers.
func (l *levelState) tick(now time.Time) []levelChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, sub := range l.pollers {
		if now.Sub(sub.seen) > maxLongPoll+5*time.Second {
			delete(l.pollers, id)
			delete(l.subs, sub)
		}
	}
	for id, v := range l.local {
		if !now.Before(v.ExpiresAt) {
			delete(l.local, id)
		}
	}
	return l.recompute(now)
}

// snapshot is this replica's views, for publishing.
func (l *levelState) snapshot(replica string) LevelSnapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LevelSnapshot{Replica: replica, Views: make([]LevelView, 0, len(l.local))}
	for _, v := range l.local {
		s.Views = append(s.Views, v)
	}
	sort.Slice(s.Views, func(i, j int) bool { return s.Views[i].ViewID < s.Views[j].ViewID })
	return s
}

// hasLocal says whether any local view is open (heartbeats are needed).
func (l *levelState) hasLocal() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.local) > 0
}

// current returns the version, the rules a subscriber may see, and a
// channel closed at the next change.
func (l *levelState) current(allows func(service, env string) bool) (uint64, []LevelRule, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []LevelRule{}
	for _, r := range l.rules {
		if allows(r.Service, r.Env) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return ruleKey(out[i].Service, out[i].Env, scopeKey(out[i].Scope)) < ruleKey(out[j].Service, out[j].Env, scopeKey(out[j].Scope))
	})
	return l.version, out, l.changed
}

// poller returns the long-poll subscriber of instance, creating it.
func (l *levelState) poller(instance string, allows func(service, env string) bool, now time.Time) *levelSub {
	l.mu.Lock()
	defer l.mu.Unlock()
	sub := l.pollers[instance]
	if sub == nil {
		sub = &levelSub{instance: instance, wake: make(chan struct{}, 1), longPoll: true}
		l.pollers[instance] = sub
		l.subs[sub] = struct{}{}
	}
	sub.allows, sub.seen = allows, now
	return sub
}

func (l *levelState) subscribe(sub *levelSub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs[sub] = struct{}{}
}

func (l *levelState) unsubscribe(sub *levelSub) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.subs, sub)
}

// ack records that sub applied version.
func (l *levelState) ack(sub *levelSub, version uint64, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if version > sub.acked && version <= l.version {
		sub.acked, sub.ackedAt = version, now
		close(l.acked)
		l.acked = make(chan struct{})
	}
	sub.seen = now
}

// acks counts the instances connected for a stream and those that
// acknowledged version (or a later one); last is the latest ack time.
func (l *levelState) acks(service, env string, version uint64, now time.Time) (connected, acked int, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for sub := range l.subs {
		if !sub.allows(service, env) {
			continue
		}
		if sub.longPoll && now.Sub(sub.seen) > maxLongPoll+5*time.Second {
			continue
		}
		connected++
		if sub.acked >= version {
			acked++
			if sub.ackedAt.After(last) {
				last = sub.ackedAt
			}
		}
	}
	return connected, acked, last
}

// ackChanged is closed at the next acknowledgement.
func (l *levelState) ackChanged() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acked
}

package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/bits"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
)

// Change is one alert state change (or, with Resend, a periodic refresh of a
// firing alert) handed to the Sink.
type Change struct {
	Alert Alert
	// From is the state before ("" for a new alert).
	From string
	// Resend marks a refresh of a still-firing alert (receivers expect
	// firing alerts to be repeated).
	Resend bool
	// Dropped means a pending alert whose condition stopped holding before
	// it fired: it is forgotten, not resolved.
	Dropped bool
}

// Sink receives changes on the engine's goroutine, in order.
type Sink interface {
	AlertChanged(ctx context.Context, ch Change)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, ch Change)

func (f SinkFunc) AlertChanged(ctx context.Context, ch Change) { f(ctx, ch) }

// EngineConfig wires an Engine.
type EngineConfig struct {
	// Sink receives state changes; nil drops them.
	Sink Sink
	// Interval is how often rules are evaluated; zero means 1s.
	Interval time.Duration
	// ResendInterval is how often a firing alert is handed to the sink
	// again; zero means 1m.
	ResendInterval time.Duration
	// MaxGroups bounds the groups one rule tracks; zero means 1000. Lines of
	// further groups are not counted (Dropped counts them).
	MaxGroups int
	// Shared, if set, makes this engine one of several replicas' engines
	// that count together and fire once (see Shared); nil: this engine
	// alone.
	Shared *Shared
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Engine evaluates a RuleSet over log entries and audit events. Observe
// methods are safe for concurrent use and only count in memory; Tick (or
// Run) evaluates and reports changes.
type Engine struct {
	cfg EngineConfig

	// rules is the set in force; replaced whole by SetRules.
	rules atomic.Pointer[ruleState]
	// dropped counts matches not counted because a rule had MaxGroups.
	dropped atomic.Int64

	// mu guards every group of every ruleState and queued. Lock order:
	// ruleState.idxMu may be taken while holding nothing; mu is never held
	// while calling the sink.
	mu     sync.Mutex
	queued []Change

	// leading is whether the last tick led (with Shared); lastState is the
	// state last written for the next leader (Tick's goroutine only).
	leading   atomic.Bool
	lastState []byte
}

// ruleState is a RuleSet with its counters.
type ruleState struct {
	set    *RuleSet
	log    []*compiled
	audit  []*compiled
	groups []map[string]*group // by compiled.index order of set.rules; guarded by Engine.mu

	idxMu sync.RWMutex
	index map[logs.Stream]*streamIndex // guarded by idxMu
}

// streamIndex is the log rules whose selector matches one stream, with one
// automaton over their literals.
type streamIndex struct {
	rules  []*compiled
	pos    []int   // position of each rule in ruleState.set.rules
	always []int   // indexes in rules of the rules without a literal
	byLit  [][]int // literal index in sc -> indexes in rules
	sc     *scanner
	words  int
}

// group is one alert candidate: a rule and one set of group values.
type group struct {
	service, env string
	values       map[string]string
	win          window
	created      time.Time
	lastSeen     time.Time
	fixed        bool // an absence rule's named stream: never forgotten

	state    string // "", pending or firing
	alert    Alert
	lastSent time.Time

	// fwd counts matches not yet forwarded to the leader (with Shared).
	fwd   int64
	fwdAt time.Time
	// sample is the last matching message of a sampling rule (unsampled
	// until an alert needs it); fwdSample the one not yet forwarded.
	sample, fwdSample string
}

// NewEngine returns an engine with no rules.
func NewEngine(cfg EngineConfig) *Engine {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.ResendInterval <= 0 {
		cfg.ResendInterval = time.Minute
	}
	if cfg.MaxGroups <= 0 {
		cfg.MaxGroups = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg}
	e.SetRules(&RuleSet{})
	return e
}

// SetSink sets the sink, before Run starts (the sink may be built after
// the engine, as the gateway is).
func (e *Engine) SetSink(s Sink) { e.cfg.Sink = s }

// Rules returns the set in force.
func (e *Engine) Rules() *RuleSet { return e.rules.Load().set }

// Dropped counts matches not counted because their rule tracked MaxGroups.
func (e *Engine) Dropped() int64 { return e.dropped.Load() }

// SetRules replaces the rules. Counters and alerts of rules whose
// definition is unchanged carry over; alerts of removed or changed rules
// are resolved (reported at the next Tick).
func (e *Engine) SetRules(set *RuleSet) {
	now := e.cfg.Now()
	st := &ruleState{set: set, groups: make([]map[string]*group, len(set.rules)), index: map[logs.Stream]*streamIndex{}}
	for _, c := range set.rules {
		if c.audit {
			st.audit = append(st.audit, c)
		} else {
			st.log = append(st.log, c)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.rules.Load()
	oldByName := map[string]int{}
	if old != nil {
		for i, c := range old.set.rules {
			oldByName[c.Name] = i
		}
	}
	kept := map[int]bool{}
	for i, c := range set.rules {
		if j, ok := oldByName[c.Name]; ok && reflect.DeepEqual(old.set.rules[j].Rule, c.Rule) {
			st.groups[i] = old.groups[j]
			kept[j] = true
			continue
		}
		st.groups[i] = map[string]*group{}
		if c.absent && !hasMeta(c.Service) && !hasMeta(c.Env) && c.Service != "" && c.Env != "" {
			st.groups[i][streamKey(c.Service, c.Env)] = &group{service: c.Service, env: c.Env,
				win: newWindow(c.window), created: now, lastSeen: now, fixed: true}
		}
	}
	if old != nil {
		for j, gs := range old.groups {
			if kept[j] {
				continue
			}
			for _, g := range gs {
				if g.state == StateFiring {
					e.queued = append(e.queued, e.resolve(g, now))
				} else if g.state == StatePending {
					e.queued = append(e.queued, Change{Alert: g.alert, From: StatePending, Dropped: true})
				}
			}
		}
	}
	e.rules.Store(st)
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

func streamKey(service, env string) string { return service + "\x00" + env }

func globOK(pattern, s string) bool {
	if pattern == "" {
		return true
	}
	ok, _ := path.Match(pattern, s)
	return ok
}

// streamIndex returns (building once) the log rules for a stream.
func (st *ruleState) streamIndex(s logs.Stream) *streamIndex {
	st.idxMu.RLock()
	idx := st.index[s]
	st.idxMu.RUnlock()
	if idx != nil {
		return idx
	}
	idx = &streamIndex{}
	var lits []string
	for i, c := range st.set.rules {
		if c.audit || !globOK(c.Service, s.Service) || !globOK(c.Env, s.Env) {
			continue
		}
		k := len(idx.rules)
		idx.rules = append(idx.rules, c)
		idx.pos = append(idx.pos, i)
		if c.literal == "" {
			idx.always = append(idx.always, k)
			continue
		}
		l := slices.Index(lits, c.literal)
		if l < 0 {
			l = len(lits)
			lits = append(lits, c.literal)
			idx.byLit = append(idx.byLit, nil)
		}
		idx.byLit[l] = append(idx.byLit[l], k)
	}
	if len(lits) > 0 {
		idx.sc = newScanner(lits)
		idx.words = (len(lits) + 63) / 64
	}
	st.idxMu.Lock()
	if len(st.index) > 10000 { // streams are bounded by sources; this is a backstop
		clear(st.index)
	}
	st.index[s] = idx
	st.idxMu.Unlock()
	return idx
}

// ObserveEntries counts the (already redacted) entries against the log
// rules: one automaton pass per message for every rule's literal, then the
// regular expressions of only the rules whose literal is present.
func (e *Engine) ObserveEntries(entries []logs.Entry) {
	st := e.rules.Load()
	if len(st.log) == 0 {
		return
	}
	var stack [4]uint64
	var last logs.Stream
	var idx *streamIndex
	for i := range entries {
		en := &entries[i]
		if s := en.Stream(); idx == nil || s != last {
			idx, last = st.streamIndex(s), s
		}
		if len(idx.rules) == 0 {
			continue
		}
		ac := attrCache{en: en}
		for _, k := range idx.always {
			e.observe(st, idx, k, en, &ac)
		}
		if idx.sc == nil {
			continue
		}
		hit := stack[:0]
		if idx.words <= len(stack) {
			hit = stack[:idx.words]
			clear(hit)
		} else {
			hit = make([]uint64, idx.words)
		}
		if !idx.sc.scan(en.Message, hit) {
			continue
		}
		for w, word := range hit {
			for word != 0 {
				l := w<<6 | bits.TrailingZeros64(word)
				word &= word - 1
				for _, k := range idx.byLit[l] {
					e.observe(st, idx, k, en, &ac)
				}
			}
		}
	}
}

// observe counts en for rule k of idx if it matches.
func (e *Engine) observe(st *ruleState, idx *streamIndex, k int, en *logs.Entry, ac *attrCache) {
	c := idx.rules[k]
	if c.minLevel > 0 && logs.LevelRank(en.Level) < c.minLevel {
		return
	}
	if !entryMatches(c, en, ac) {
		return
	}
	sample := ""
	if c.Sample {
		sample = en.Message
	}
	e.count(st, idx.pos[k], c, en.Service, en.Env, entryGroup(c, en), 1, sample)
}

// attrCache remembers a line's last few attribute look-ups: rules on the
// same attribute share one map look-up.
type attrCache struct {
	en   *logs.Entry
	n    int
	keys [4]string
	vals [4]string
}

func (ac *attrCache) get(k string) string {
	for i := range ac.n {
		if ac.keys[i] == k {
			return ac.vals[i]
		}
	}
	v := attr(ac.en, k)
	if ac.n < len(ac.keys) {
		ac.keys[ac.n], ac.vals[ac.n] = k, v
		ac.n++
	}
	return v
}

func entryMatches(c *compiled, en *logs.Entry, ac *attrCache) bool {
	for _, a := range c.attrEq {
		if ac.get(a.key) != a.value {
			return false
		}
	}
	if c.message != nil && !c.message.MatchString(en.Message) {
		return false
	}
	for _, a := range c.attrRE {
		if !a.re.MatchString(ac.get(a.key)) {
			return false
		}
	}
	return true
}

// attr reads an attribute, or one of the entry's own fields by name.
func attr(en *logs.Entry, k string) string {
	if v, ok := en.Attrs[k]; ok {
		return v
	}
	switch k {
	case "level":
		return en.Level
	case "host":
		return en.Host
	case "pod":
		return en.Pod
	case "container":
		return en.Container
	case "trace_id":
		return en.TraceID
	}
	return ""
}

func entryGroup(c *compiled, en *logs.Entry) []string {
	if len(c.GroupBy) == 0 {
		return nil
	}
	vals := make([]string, len(c.GroupBy))
	for i, g := range c.GroupBy {
		vals[i] = attr(en, g)
	}
	return vals
}

// ObserveEvent counts an audit event against the audit rules. Events about
// alerts themselves are not counted, so an alert cannot feed itself.
func (e *Engine) ObserveEvent(ev audit.Event) {
	st := e.rules.Load()
	if len(st.audit) == 0 || strings.HasPrefix(ev.Action, "alert.") {
		return
	}
	for i, c := range st.set.rules {
		if !c.audit || !globOK(c.Action, ev.Action) || (c.Outcome != "" && c.Outcome != ev.Outcome) {
			continue
		}
		if !globOK(c.Service, ev.Target.Service) || !globOK(c.Env, ev.Target.Env) {
			continue
		}
		if c.Actor != "" && !globOK(c.Actor, ev.Actor.Subject) && !globOK(c.Actor, ev.Actor.Email) && !globOK(c.Actor, ev.Actor.Name) {
			continue
		}
		var vals []string
		service, env := "", ""
		for _, g := range c.GroupBy {
			v := eventField(ev, g)
			vals = append(vals, v)
			switch g {
			case "service", "target.service":
				service = v
			case "env", "target.env":
				env = v
			}
		}
		e.count(st, i, c, service, env, vals, eventWeight(ev), "")
	}
}

// eventWeight is how many occurrences one event stands for: aggregated
// events (auth.failed with details.count) count as many.
func eventWeight(ev audit.Event) int64 {
	switch n := ev.Details["count"].(type) {
	case int:
		return int64(max(n, 1))
	case int64:
		return max(n, 1)
	case float64:
		return int64(max(n, 1))
	}
	return 1
}

func eventField(ev audit.Event, name string) string {
	switch name {
	case "action":
		return ev.Action
	case "outcome":
		return ev.Outcome
	case "actor":
		for _, v := range []string{ev.Actor.Email, ev.Actor.Subject, ev.Actor.Name, ev.Actor.ID} {
			if v != "" {
				return v
			}
		}
		return ""
	case "actor.subject":
		return ev.Actor.Subject
	case "actor.email":
		return ev.Actor.Email
	case "actor.id":
		return ev.Actor.ID
	case "service", "target.service":
		return ev.Target.Service
	case "env", "target.env":
		return ev.Target.Env
	case "target.grant_id":
		return ev.Target.GrantID
	case "target.request_id":
		return ev.Target.RequestID
	case "source_addr":
		return ev.SourceAddr
	}
	if k, ok := strings.CutPrefix(name, "details."); ok {
		if v, ok := ev.Details[k]; ok {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// count adds n matches to the rule's group for the given values; sample,
// if not empty, is the matching message (kept raw; cut when an alert
// takes it).
func (e *Engine) count(st *ruleState, pos int, c *compiled, service, env string, vals []string, n int64, sample string) {
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if g := e.groupLocked(st, pos, c, service, env, vals, now); g != nil {
		g.win.add(now, n)
		g.lastSeen = now
		if sample != "" {
			g.sample = sample
		}
		if e.cfg.Shared != nil {
			g.fwd += n
			g.fwdAt = now
			if sample != "" {
				g.fwdSample = sample
			}
		}
	}
}

// groupLocked finds or creates a group; nil when the rule is full.
func (e *Engine) groupLocked(st *ruleState, pos int, c *compiled, service, env string, vals []string, now time.Time) *group {
	key := streamKey(service, env)
	if len(vals) > 0 {
		key += "\x00" + strings.Join(vals, "\x00")
	}
	gs := st.groups[pos]
	g := gs[key]
	if g == nil {
		if len(gs) >= e.cfg.MaxGroups {
			e.dropped.Add(1)
			return nil
		}
		g = &group{service: service, env: env, win: newWindow(c.window), created: now}
		if len(vals) > 0 {
			g.values = make(map[string]string, len(vals))
			for i, name := range c.GroupBy {
				g.values[name] = vals[i]
			}
		}
		gs[key] = g
	}
	return g
}

// takeDeltas collects and resets the matches not yet forwarded.
func (e *Engine) takeDeltas(st *ruleState) []delta {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []delta
	for i, c := range st.set.rules {
		for _, g := range st.groups[i] {
			if g.fwd == 0 {
				continue
			}
			d := delta{Rule: c.Name, Digest: st.set.Digest, Service: g.service, Env: g.env, N: g.fwd, At: g.fwdAt.UnixNano(),
				Sample: sampleOf(g.fwdSample)}
			for _, name := range c.GroupBy {
				d.Values = append(d.Values, g.values[name])
			}
			out = append(out, d)
			g.fwd, g.fwdSample = 0, ""
		}
	}
	return out
}

// follow is a non-leader's tick: its counts went to the leader, so it
// keeps none, and it holds no alert state (the leader does). Groups are
// forgotten but for absence rules' named streams and those counted since
// the deltas were taken.
func (e *Engine) follow(st *ruleState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, c := range st.set.rules {
		for key, g := range st.groups[i] {
			if !g.fixed && g.fwd == 0 {
				delete(st.groups[i], key)
				continue
			}
			g.win = newWindow(c.window)
			g.state, g.alert, g.sample = "", Alert{}, ""
		}
	}
}

// adopt makes this replica, now the leader, carry on from the last one:
// the windows, times and alerts of its state (see Shared), and the pending
// and firing alerts of the shared store when there is one. Counts this
// replica made since its last tick stay in its windows.
func (e *Engine) adopt(ctx context.Context, st *ruleState) error {
	sh := e.cfg.Shared
	snap, err := sh.loadState(ctx)
	if err != nil {
		return fmt.Errorf("read the last leader's alert state: %w", err)
	}
	var active []Alert
	fromStore := sh.Store != nil
	if fromStore {
		if active, err = sh.Store.Active(ctx); err != nil {
			return fmt.Errorf("read the active alerts: %w", err)
		}
	}
	now := e.cfg.Now()
	byName := map[string]int{}
	for i, c := range st.set.rules {
		byName[c.Name] = i
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	lastSent := map[string]time.Time{}
	refilled := map[*group]bool{}
	if snap != nil && snap.Digest == st.set.Digest {
		for _, sg := range snap.Groups {
			pos, ok := byName[sg.Rule]
			if !ok {
				continue
			}
			c := st.set.rules[pos]
			if len(sg.Values) != len(c.GroupBy) {
				continue
			}
			created := fromNanos(sg.Created)
			g := e.groupLocked(st, pos, c, sg.Service, sg.Env, sg.Values, created)
			if g == nil {
				continue
			}
			for _, b := range sg.Buckets {
				g.win.merge(b[0], b[1])
			}
			refilled[g] = len(sg.Buckets) > 0
			if created.Before(g.created) {
				g.created = created
			}
			if t := fromNanos(sg.LastSeen); t.After(g.lastSeen) {
				g.lastSeen = t
			}
			if sg.State == "" || sg.Alert == nil {
				continue
			}
			lastSent[sg.Alert.ID] = fromNanos(sg.LastSent)
			if !fromStore {
				adoptAlert(g, *sg.Alert, fromNanos(sg.LastSent), now)
			}
		}
	}
	for _, a := range active {
		pos, ok := byName[a.Rule]
		if !ok || (a.Kind != "" && a.Kind != st.set.rules[pos].Kind) {
			// The rule is gone (as SetRules does for a removed rule).
			if a.State == StatePending {
				e.queued = append(e.queued, Change{Alert: a, From: StatePending, Dropped: true})
			} else {
				a.State, a.EndedAt, a.UpdatedAt = StateResolved, timePtr(now), now.UTC()
				e.queued = append(e.queued, Change{Alert: a, From: StateFiring})
			}
			continue
		}
		c := st.set.rules[pos]
		var vals []string
		for _, name := range c.GroupBy {
			vals = append(vals, a.Group[name])
		}
		g := e.groupLocked(st, pos, c, a.Service, a.Env, vals, now)
		if g == nil {
			continue
		}
		last, ok := lastSent[a.ID]
		if !ok {
			last = a.UpdatedAt
		}
		if !refilled[g] && !c.absent {
			// No window from the last leader: its last count stands for it.
			g.win.add(a.UpdatedAt, a.Count)
		}
		if c.absent && a.PendingSince != nil {
			if t := a.PendingSince.Add(-c.window); t.Before(g.created) {
				g.created = t
			}
		}
		adoptAlert(g, a, last, now)
	}
	return nil
}

// adoptAlert makes a the group's alert in force.
func adoptAlert(g *group, a Alert, lastSent, now time.Time) {
	a = cloneAlert(a)
	if a.Annotations == nil {
		a.Annotations = map[string]string{}
	}
	if a.PendingSince == nil {
		a.PendingSince = timePtr(now)
	}
	if a.State == StateFiring && a.StartedAt == nil {
		a.StartedAt = a.PendingSince
	}
	g.state, g.alert, g.lastSent = a.State, a, lastSent
}

// stateLocked is the leader's state to write after a tick (see Shared):
// every group with a count, an alert, or an absence rule's named stream,
// in a stable order. Samples are left out.
func (e *Engine) stateLocked(st *ruleState, now time.Time) snapshot {
	s := snapshot{Digest: st.set.Digest, Groups: []snapGroup{}}
	for i, c := range st.set.rules {
		start := len(s.Groups)
		for _, g := range st.groups[i] {
			b := g.win.buckets(now)
			if len(b) == 0 && g.state == "" && !g.fixed {
				continue
			}
			sg := snapGroup{Rule: c.Name, Service: g.service, Env: g.env, Buckets: b,
				Created: nanos(g.created), LastSeen: nanos(g.lastSeen)}
			for _, name := range c.GroupBy {
				sg.Values = append(sg.Values, g.values[name])
			}
			if g.state != "" {
				a := cloneAlert(g.alert)
				a.Sample = ""
				sg.State, sg.Alert, sg.LastSent = g.state, &a, nanos(g.lastSent)
			}
			s.Groups = append(s.Groups, sg)
		}
		slices.SortFunc(s.Groups[start:], func(a, b snapGroup) int {
			return strings.Compare(a.Service+"\x00"+a.Env+"\x00"+strings.Join(a.Values, "\x00"),
				b.Service+"\x00"+b.Env+"\x00"+strings.Join(b.Values, "\x00"))
		})
	}
	return s
}

// saveState writes the leader's state when it changed since the last
// write.
func (e *Engine) saveState(ctx context.Context) {
	st := e.rules.Load()
	e.mu.Lock()
	s := e.stateLocked(st, e.cfg.Now())
	e.mu.Unlock()
	b, err := json.Marshal(s)
	if err != nil || bytes.Equal(b, e.lastState) {
		return
	}
	if _, err := e.cfg.Shared.saveState(ctx, b); err != nil {
		e.cfg.Logger.Warn("write the alert state for the next leader", "err", err)
		return
	}
	e.lastState = b
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// apply folds other replicas' matches into the leader's windows.
func (e *Engine) apply(st *ruleState, ds []delta) {
	byName := map[string]int{}
	for i, c := range st.set.rules {
		byName[c.Name] = i
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range ds {
		pos, ok := byName[d.Rule]
		if !ok || d.Digest != st.set.Digest || d.N <= 0 {
			continue
		}
		c := st.set.rules[pos]
		if len(d.Values) != len(c.GroupBy) {
			continue
		}
		at := time.Unix(0, d.At)
		if g := e.groupLocked(st, pos, c, d.Service, d.Env, d.Values, at); g != nil {
			g.win.add(at, d.N)
			if at.After(g.lastSeen) {
				g.lastSeen = at
				if d.Sample != "" && c.Sample {
					g.sample = d.Sample
				}
			}
		}
	}
}

// Tick evaluates every rule at the engine's now and reports the changes to
// the sink. With Shared, a replica that does not lead forwards its counts
// and reports nothing; one that has just become leader first adopts the
// last leader's state.
func (e *Engine) Tick(ctx context.Context) {
	sh := e.cfg.Shared
	if sh != nil {
		st := e.rules.Load()
		ds := e.takeDeltas(st)
		if !sh.lead(ctx) {
			e.leading.Store(false)
			if err := sh.push(ctx, ds); err != nil {
				e.cfg.Logger.Warn("forward alert matches to the leader", "err", err, "matches", len(ds))
			}
			e.follow(st)
			return
		}
		if !e.leading.Load() {
			// This replica's own counts stay in its windows meanwhile.
			if err := e.adopt(ctx, st); err != nil {
				e.cfg.Logger.Warn("take over alerting: will retry", "err", err)
				return
			}
			e.lastState = nil
			e.leading.Store(true)
		}
		remote, err := sh.pull(ctx)
		if err != nil {
			e.cfg.Logger.Warn("read forwarded alert matches", "err", err)
		}
		e.apply(st, remote)
	}
	changes := e.evaluate(e.cfg.Now())
	if e.cfg.Sink != nil {
		for _, ch := range changes {
			e.cfg.Sink.AlertChanged(ctx, ch)
		}
	}
	if sh != nil {
		e.saveState(ctx)
	}
}

// Leading reports whether this engine evaluated as the cluster's leader
// at its last tick (always false without Shared).
func (e *Engine) Leading() bool { return e.leading.Load() }

// Active returns the pending and firing alerts.
func (e *Engine) Active() []Alert {
	st := e.rules.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for _, gs := range st.groups {
		for _, g := range gs {
			if g.state != "" {
				out = append(out, g.alert)
			}
		}
	}
	return out
}

func (e *Engine) evaluate(now time.Time) []Change {
	st := e.rules.Load()
	e.mu.Lock()
	defer e.mu.Unlock()
	changes := e.queued
	e.queued = nil
	for i, c := range st.set.rules {
		for key, g := range st.groups[i] {
			n := g.win.count(now)
			cond := n >= c.threshold
			if c.absent {
				cond = n == 0 && now.Sub(g.created) >= c.window
			}
			switch {
			case g.state == "" && cond:
				g.alert = newAlert(c, g, now, n)
				if c.pending > 0 {
					g.state, g.alert.State = StatePending, StatePending
					changes = append(changes, Change{Alert: g.alert})
					continue
				}
				changes = append(changes, e.fire(g, now, ""))
			case g.state == StatePending && !cond:
				g.state = ""
				changes = append(changes, Change{Alert: g.alert, From: StatePending, Dropped: true})
			case g.state == StatePending && now.Sub(*g.alert.PendingSince) >= c.pending:
				g.alert.Count = n
				changes = append(changes, e.fire(g, now, StatePending))
			case g.state == StateFiring && !cond:
				changes = append(changes, e.resolve(g, now))
			case g.state == StateFiring && now.Sub(g.lastSent) >= e.cfg.ResendInterval:
				g.alert.Count, g.alert.UpdatedAt, g.lastSent = n, now.UTC(), now
				g.alert.Annotations["count"] = itoa(n)
				changes = append(changes, Change{Alert: cloneAlert(g.alert), From: StateFiring, Resend: true})
			case g.state == StateFiring && !c.absent && n > g.alert.Count:
				g.alert.Count = n // reported at the next resend
				g.alert.Annotations["count"] = itoa(n)
			case g.state == "" && !g.fixed && n == 0 && now.Sub(g.lastSeen) > c.window:
				if !c.absent || now.Sub(g.lastSeen) > 2*c.window {
					delete(st.groups[i], key)
				}
			}
		}
	}
	return changes
}

func newAlert(c *compiled, g *group, now time.Time, n int64) Alert {
	a := Alert{ID: newAlertID(), Rule: c.Name, Kind: c.Kind, Service: g.service, Env: g.env,
		Severity: c.Severity, Count: n, Threshold: c.threshold, Window: c.window.String(), Absent: c.absent,
		PendingSince: timePtr(now), UpdatedAt: now.UTC()}
	if len(g.values) > 0 {
		a.Group = g.values
	}
	a.Labels = map[string]string{}
	for k, v := range c.Labels {
		a.Labels[k] = v
	}
	a.Annotations = map[string]string{}
	for k, v := range c.Annotations {
		a.Annotations[k] = v
	}
	a.Annotations["count"], a.Annotations["window"] = itoa(n), c.window.String()
	if _, ok := a.Annotations["summary"]; !ok {
		a.Annotations["summary"] = summary(c, g, n)
	}
	return a
}

func summary(c *compiled, g *group, n int64) string {
	where := ""
	if g.service != "" || g.env != "" {
		where = " on " + g.service + "/" + g.env
	}
	if c.absent {
		return fmt.Sprintf("no matching line%s for %s", where, c.window)
	}
	return fmt.Sprintf("%d matches%s in %s (threshold %d)", n, where, c.window, c.threshold)
}

func (e *Engine) fire(g *group, now time.Time, from string) Change {
	g.state, g.lastSent = StateFiring, now
	g.alert.State, g.alert.StartedAt, g.alert.UpdatedAt = StateFiring, timePtr(now), now.UTC()
	g.alert.Annotations["count"] = itoa(g.alert.Count)
	if g.sample != "" {
		g.alert.Sample = sampleOf(g.sample)
	}
	return Change{Alert: cloneAlert(g.alert), From: from}
}

func (e *Engine) resolve(g *group, now time.Time) Change {
	g.state = ""
	g.alert.State, g.alert.EndedAt, g.alert.UpdatedAt = StateResolved, timePtr(now), now.UTC()
	return Change{Alert: cloneAlert(g.alert), From: StateFiring}
}

func cloneAlert(a Alert) Alert {
	a.Annotations = cloneMap(a.Annotations)
	a.Labels = cloneMap(a.Labels)
	a.Group = cloneMap(a.Group)
	return a
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Run evaluates every Interval until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.Tick(ctx)
		}
	}
}

package logs

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// ErrInvalidFilter is wrapped by every Filter.Compile error: a client error.
var ErrInvalidFilter = errors.New("invalid filter")

// Limits on filters, so that a viewer cannot make the publish path expensive.
const (
	maxPatternLen = 1024
	maxFilterAttr = 32
)

// Filter selects the entries a viewer receives. The zero Filter matches all.
type Filter struct {
	// MinLevel drops entries below this level ("" = no minimum). With a
	// minimum set, entries whose level is unknown are dropped too.
	MinLevel string `json:"min_level,omitempty"`
	// Grep keeps only entries whose message matches this RE2 expression.
	Grep string `json:"grep,omitempty"`
	// Exclude drops entries whose message matches this RE2 expression.
	Exclude string `json:"exclude,omitempty"`
	// Attrs keeps only entries with all these attribute values (exact match).
	// The keys host, pod, container, trace_id and span_id also match the
	// entry fields of those names when the attribute itself is absent.
	Attrs map[string]string `json:"attributes,omitempty"`
	// HideRaised drops entries a service emitted only because a grant
	// raised its log level (attribute RaisedAttr): the gateway sets it for
	// viewers whose grant raises none.
	HideRaised bool `json:"hide_raised,omitempty"`
}

// RaisedAttr marks an entry a service emitted only because loggate raised
// its level; the value is the raised level ("debug").
const RaisedAttr = "loggate.raised"

// Matcher is a compiled Filter. It is immutable and safe for concurrent use.
type Matcher struct {
	minRank int
	grep    *regexp.Regexp
	exclude *regexp.Regexp
	attrs   [][2]string // sorted by key
	hide    bool        // HideRaised
	key     string
}

// Compile validates the filter and compiles its expressions. Errors wrap
// ErrInvalidFilter.
func (f Filter) Compile() (*Matcher, error) {
	m := &Matcher{}
	if f.MinLevel != "" {
		m.minRank = LevelRank(f.MinLevel)
		if m.minRank == 0 {
			return nil, fmt.Errorf("%w: unknown level %q", ErrInvalidFilter, f.MinLevel)
		}
	}
	var err error
	if m.grep, err = compilePattern("grep", f.Grep); err != nil {
		return nil, err
	}
	if m.exclude, err = compilePattern("exclude", f.Exclude); err != nil {
		return nil, err
	}
	if len(f.Attrs) > maxFilterAttr {
		return nil, fmt.Errorf("%w: more than %d attributes", ErrInvalidFilter, maxFilterAttr)
	}
	for _, k := range sortedKeys(f.Attrs) {
		m.attrs = append(m.attrs, [2]string{k, f.Attrs[k]})
	}
	m.hide = f.HideRaised
	m.key = m.canonicalKey(f)
	return m, nil
}

func compilePattern(name, pattern string) (*regexp.Regexp, error) {
	if pattern == "" {
		return nil, nil
	}
	if len(pattern) > maxPatternLen {
		return nil, fmt.Errorf("%w: %s pattern longer than %d bytes", ErrInvalidFilter, name, maxPatternLen)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidFilter, name, err)
	}
	return re, nil
}

// canonicalKey renders the filter so that equal filters get equal keys and
// different ones different keys (every part is quoted, so none can run
// into the next).
func (m *Matcher) canonicalKey(f Filter) string {
	var b strings.Builder
	b.WriteString("l=")
	b.WriteString(strconv.Itoa(m.minRank))
	b.WriteString(" g=")
	b.WriteString(strconv.Quote(f.Grep))
	b.WriteString(" x=")
	b.WriteString(strconv.Quote(f.Exclude))
	for _, kv := range m.attrs {
		b.WriteString(" a=")
		b.WriteString(strconv.Quote(kv[0]))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(kv[1]))
	}
	if m.hide {
		b.WriteString(" r=hide")
	}
	return b.String()
}

// Key is the canonical form of the filter: viewers whose matchers have equal
// keys receive the same entries and share the encoded messages.
func (m *Matcher) Key() string { return m.key }

// MatchAll reports whether the matcher accepts every entry.
func (m *Matcher) MatchAll() bool {
	return m.minRank == 0 && m.grep == nil && m.exclude == nil && len(m.attrs) == 0 && !m.hide
}

// matchesAllOf is the cheap check for the common filter that only hides
// raised entries: a batch without any passes whole (and is not copied).
func (m *Matcher) matchesAllOf(batch []Entry) bool {
	if !m.hide || m.minRank != 0 || m.grep != nil || m.exclude != nil || len(m.attrs) != 0 {
		return false
	}
	for i := range batch {
		if batch[i].Attrs[RaisedAttr] != "" {
			return false
		}
	}
	return true
}

// Match reports whether e passes the filter.
func (m *Matcher) Match(e *Entry) bool {
	if m.minRank > 0 && LevelRank(e.Level) < m.minRank {
		return false
	}
	if m.hide && e.Attrs[RaisedAttr] != "" {
		return false
	}
	for _, kv := range m.attrs {
		v, ok := e.Attrs[kv[0]]
		if !ok {
			v, ok = e.field(kv[0])
		}
		if !ok || v != kv[1] {
			return false
		}
	}
	if m.grep != nil && !m.grep.MatchString(e.Message) {
		return false
	}
	if m.exclude != nil && m.exclude.MatchString(e.Message) {
		return false
	}
	return true
}

// field returns the well-known entry fields an attribute filter may name.
func (e *Entry) field(name string) (string, bool) {
	switch name {
	case "host":
		return e.Host, e.Host != ""
	case "pod":
		return e.Pod, e.Pod != ""
	case "container":
		return e.Container, e.Container != ""
	case "trace_id":
		return e.TraceID, e.TraceID != ""
	case "span_id":
		return e.SpanID, e.SpanID != ""
	}
	return "", false
}

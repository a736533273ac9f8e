package slogship

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"
	"unicode/utf8"
)

// ruleSet is the raised levels in force, immutable once stored.
type ruleSet struct {
	min   slog.Level // the lowest level any rule enables
	rules []Rule
}

func newRuleSet(rules []Rule) *ruleSet {
	if len(rules) == 0 {
		return nil
	}
	rs := &ruleSet{min: rules[0].Level, rules: rules}
	for _, r := range rules[1:] {
		rs.min = min(rs.min, r.Level)
	}
	return rs
}

// handler is the slog.Handler a Shipper wraps around the service's own.
// It is immutable; WithAttrs and WithGroup return new ones.
type handler struct {
	s      *Shipper
	inner  slog.Handler
	prefix string     // group prefix for record attributes ("g1.g2.")
	attrs  []flatAttr // attributes added with WithAttrs, flattened
}

type flatAttr struct {
	key string
	val slog.Value
}

// Enabled is the hot path's first question. With no raised level it is
// the wrapped handler's answer plus one atomic load.
func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	if h.inner.Enabled(ctx, l) {
		return true
	}
	rs := h.s.rules.Load()
	return rs != nil && l >= rs.min
}

// Handle writes a record at the normal level to the wrapped handler and
// queues it for loggate. A record below the normal level was enabled by a
// raised level: it is kept only if a rule's scope matches it, and then
// shipped (and written locally only with Config.LocalDebug).
func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if !h.inner.Enabled(ctx, r.Level) {
		rs := h.s.rules.Load()
		if rs == nil || !h.matches(rs, r) {
			return nil
		}
		h.s.enqueue(h, r, true)
		if h.s.cfg.LocalDebug {
			return h.inner.Handle(ctx, r)
		}
		return nil
	}
	h.s.enqueue(h, r, false)
	return h.inner.Handle(ctx, r)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	n := &handler{s: h.s, inner: h.inner.WithAttrs(as), prefix: h.prefix}
	n.attrs = append(make([]flatAttr, 0, len(h.attrs)+len(as)), h.attrs...)
	for _, a := range as {
		n.attrs = flatten(n.attrs, h.prefix, a)
	}
	return n
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &handler{s: h.s, inner: h.inner.WithGroup(name), prefix: h.prefix + name + ".", attrs: h.attrs}
}

// flatten appends a with nested groups joined by '.', as loggate's ingest
// flattens nested objects.
func flatten(dst []flatAttr, prefix string, a slog.Attr) []flatAttr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p = prefix + a.Key + "."
		}
		for _, ga := range v.Group() {
			dst = flatten(dst, p, ga)
		}
		return dst
	}
	if a.Key == "" {
		return dst
	}
	return append(dst, flatAttr{key: prefix + a.Key, val: v})
}

// matches reports whether any rule enables r: its level is at or above the
// rule's, and every scope attribute is on the handler or the record.
func (h *handler) matches(rs *ruleSet, r slog.Record) bool {
	for _, rule := range rs.rules {
		if r.Level < rule.Level {
			continue
		}
		if len(rule.Scope) == 0 {
			return true
		}
		ok := true
		for _, want := range rule.Scope {
			if !h.has(r, want) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (h *handler) has(r slog.Record, want ScopeAttr) bool {
	for _, a := range h.attrs {
		if a.key == want.Key && a.val.String() == want.Value {
			return true
		}
	}
	found := false
	r.Attrs(func(a slog.Attr) bool {
		for _, fa := range flatten(nil, h.prefix, a) {
			if fa.key == want.Key && fa.val.String() == want.Value {
				found = true
				return false
			}
		}
		return true
	})
	return found
}

// encode appends r as one NDJSON line of loggate's ingest format. It runs
// on the sender goroutine, off the caller's path.
// A raised record carries "loggate.raised": its level, so that loggate
// shows it only to viewers whose grant raises the level.
func (h *handler) encode(buf *bytes.Buffer, r slog.Record, raised bool) {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	var scratch [64]byte
	buf.WriteString(`{"time":"`)
	buf.Write(t.UTC().AppendFormat(scratch[:0], time.RFC3339Nano))
	buf.WriteString(`","level":"`)
	buf.WriteString(levelName(r.Level))
	buf.WriteString(`","msg":`)
	writeString(buf, r.Message)
	if raised {
		buf.WriteString(`,"loggate.raised":"`)
		buf.WriteString(levelName(r.Level))
		buf.WriteByte('"')
	}
	// Keys already written: a later "msg" attribute must not replace the
	// message, nor a repeated key make the line ambiguous.
	var keysArr [16]string
	keys := keysArr[:0]
	write := func(key string, v slog.Value) {
		if key == "time" || key == "level" || key == "msg" || key == raisedKey {
			return
		}
		for _, k := range keys {
			if k == key {
				return
			}
		}
		keys = append(keys, key)
		buf.WriteByte(',')
		writeString(buf, key)
		buf.WriteByte(':')
		writeValue(buf, v)
	}
	for _, a := range h.attrs {
		write(a.key, a.val)
	}
	r.Attrs(func(a slog.Attr) bool {
		v := a.Value.Resolve()
		if v.Kind() != slog.KindGroup {
			if a.Key != "" {
				write(h.prefix+a.Key, v)
			}
			return true
		}
		for _, fa := range flatten(nil, h.prefix, a) {
			write(fa.key, fa.val)
		}
		return true
	})
	buf.WriteString("}\n")
}

const hexDigits = "0123456789abcdef"

// raisedKey is loggate's marker of a raised record (logs.RaisedAttr); a
// record's own attribute of that name is not shipped.
const raisedKey = "loggate.raised"

// writeString writes s as a JSON string; invalid UTF-8 becomes U+FFFD.
func writeString(buf *bytes.Buffer, s string) {
	buf.WriteByte('"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf.WriteString(s[start:i])
			switch c {
			case '"', '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case '\n':
				buf.WriteString(`\n`)
			case '\r':
				buf.WriteString(`\r`)
			case '\t':
				buf.WriteString(`\t`)
			default:
				buf.WriteString(`\u00`)
				buf.WriteByte(hexDigits[c>>4])
				buf.WriteByte(hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(s[start:i])
			buf.WriteString("\ufffd")
			i++
			start = i
			continue
		}
		i += size
	}
	buf.WriteString(s[start:])
	buf.WriteByte('"')
}

func writeValue(buf *bytes.Buffer, v slog.Value) {
	switch v.Kind() {
	case slog.KindInt64:
		buf.WriteString(strconv.FormatInt(v.Int64(), 10))
	case slog.KindUint64:
		buf.WriteString(strconv.FormatUint(v.Uint64(), 10))
	case slog.KindFloat64:
		b, err := json.Marshal(v.Float64())
		if err != nil { // NaN, Inf
			writeString(buf, v.String())
			return
		}
		buf.Write(b)
	case slog.KindBool:
		buf.WriteString(strconv.FormatBool(v.Bool()))
	case slog.KindTime:
		writeString(buf, v.Time().UTC().Format(time.RFC3339Nano))
	case slog.KindDuration:
		writeString(buf, v.Duration().String())
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			writeString(buf, err.Error())
			return
		}
		b, err := json.Marshal(v.Any())
		if err != nil || len(b) > 16<<10 {
			writeString(buf, v.String())
			return
		}
		buf.Write(b)
	default:
		writeString(buf, v.String())
	}
}

// appendNotice adds the line that tells loggate (and the viewer) that
// records were dropped; it carries counts only, never record content.
func appendNotice(buf *bytes.Buffer, t time.Time, n, total int64) {
	buf.WriteString(`{"time":"`)
	buf.Write(t.UTC().AppendFormat(nil, time.RFC3339Nano))
	buf.WriteString(`","level":"warn","msg":"slogship dropped `)
	buf.WriteString(strconv.FormatInt(n, 10))
	buf.WriteString(` records: the ship queue was full","slogship.dropped":`)
	buf.WriteString(strconv.FormatInt(n, 10))
	buf.WriteString(`,"slogship.dropped_total":`)
	buf.WriteString(strconv.FormatInt(total, 10))
	buf.WriteString("}\n")
}

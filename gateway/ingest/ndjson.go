package ingest

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/logs"
)

// DecodeJSONLines decodes NDJSON, or a JSON array of objects (detected by
// the first non-space byte), for one stream given by the caller (the URL's
// service and env).
//
// Each record needs a message field (see Mapping). Its time may be RFC 3339
// or a unix number (seconds, possibly fractional, milli-, micro- or
// nanoseconds, told apart by magnitude), default opts.Now. Its level is
// normalised (NormalizeLevel, or syslog/pino/OTLP numbers), default info.
// A time or level that cannot be understood does not reject the line: the
// default is used and the original field is kept as an attribute.
// Every other field becomes an attribute: nested objects flattened with '.',
// arrays kept as JSON text, numbers, booleans and null as their JSON text.
// trace_id, span_id, host/hostname, pod/k8s.pod.name and
// container/container.name are lifted into their Entry fields. Empty lines
// are skipped. One bad line rejects the body with a *LineError.
func DecodeJSONLines(body []byte, stream logs.Stream, opts Options) ([]logs.Entry, error) {
	if stream.Service == "" || stream.Env == "" {
		return nil, &StreamError{Service: stream.Service, Env: stream.Env}
	}
	d := newLineDecoder(stream, opts)
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		return d.decodeArray(string(trimmed))
	}
	out := make([]logs.Entry, 0, bytes.Count(body, []byte{'\n'})+1)
	for lineNo := 1; len(body) > 0; lineNo++ {
		var line []byte
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			line, body = body, nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(line) > d.maxLine {
			return nil, &LineError{Line: lineNo, Msg: fmt.Sprintf("line of %d bytes is over the %d byte limit", len(line), d.maxLine), TooLarge: true}
		}
		e, msg := d.decode(string(line))
		if msg != "" {
			return nil, &LineError{Line: lineNo, Msg: msg}
		}
		out = append(out, e)
	}
	return out, nil
}

// lineDecoder holds the per-call state of DecodeJSONLines: the scanner's
// field buffer is reused from line to line.
type lineDecoder struct {
	stream   logs.Stream
	now      time.Time
	maxLine  int
	timeKeys []string
	levKeys  []string
	msgKeys  []string
	sc       scanner
}

func newLineDecoder(stream logs.Stream, opts Options) *lineDecoder {
	d := &lineDecoder{
		stream:   stream,
		now:      opts.now(),
		maxLine:  opts.maxLine(),
		timeKeys: defaultTimeFields,
		levKeys:  defaultLevelFields,
		msgKeys:  defaultMessageFields,
	}
	if m := opts.Mapping; m.TimeField != "" {
		d.timeKeys = []string{m.TimeField}
	}
	if m := opts.Mapping; m.LevelField != "" {
		d.levKeys = []string{m.LevelField}
	}
	if m := opts.Mapping; m.MessageField != "" {
		d.msgKeys = []string{m.MessageField}
	}
	return d
}

// decodeArray decodes a JSON array of objects; element i is "line" i+1.
func (d *lineDecoder) decodeArray(s string) ([]logs.Entry, error) {
	outer := scanner{s: s, pos: 1}
	var out []logs.Entry
	outer.skipSpace()
	if outer.pos < len(s) && s[outer.pos] == ']' {
		outer.pos++
	} else {
		for n := 1; ; n++ {
			outer.skipSpace()
			start := outer.pos
			if !outer.skipValue(1) {
				return nil, &LineError{Line: n, Msg: outer.err}
			}
			elem := s[start:outer.pos]
			if len(elem) > d.maxLine {
				return nil, &LineError{Line: n, Msg: fmt.Sprintf("element of %d bytes is over the %d byte limit", len(elem), d.maxLine), TooLarge: true}
			}
			// A copy, so that entries do not keep the whole body alive.
			e, msg := d.decode(strings.Clone(elem))
			if msg != "" {
				return nil, &LineError{Line: n, Msg: msg}
			}
			out = append(out, e)
			outer.skipSpace()
			if outer.pos >= len(s) {
				return nil, &LineError{Line: n, Msg: "unterminated array"}
			}
			if s[outer.pos] == ']' {
				outer.pos++
				break
			}
			if s[outer.pos] != ',' {
				return nil, &LineError{Line: n, Msg: "expected ',' or ']' after element"}
			}
			outer.pos++
		}
	}
	outer.skipSpace()
	if outer.pos != len(s) {
		return nil, &LineError{Line: len(out) + 1, Msg: "data after the array"}
	}
	return out, nil
}

func rank(key string, names []string) int {
	for i, n := range names {
		if key == n {
			return i
		}
	}
	return -1
}

// decode turns one JSON object into an entry; msg is non-empty on error.
func (d *lineDecoder) decode(line string) (e logs.Entry, msg string) {
	sc := &d.sc
	if !sc.scanObject(line) {
		return e, sc.err
	}
	fields := sc.fields
	msgIdx, timeIdx, levIdx := -1, -1, -1
	msgRank, timeRank, levRank := len(d.msgKeys), len(d.timeKeys), len(d.levKeys)
	for i := range fields {
		k := fields[i].key
		if r := rank(k, d.msgKeys); r >= 0 && r < msgRank && fields[i].kind != kindNull {
			msgIdx, msgRank = i, r
		} else if r := rank(k, d.timeKeys); r >= 0 && r < timeRank {
			timeIdx, timeRank = i, r
		} else if r := rank(k, d.levKeys); r >= 0 && r < levRank {
			levIdx, levRank = i, r
		}
	}
	if msgIdx < 0 {
		return e, "missing message field (" + strings.Join(d.msgKeys, ", ") + ")"
	}
	e = logs.Entry{
		Time:     d.now,
		Observed: d.now,
		Service:  d.stream.Service,
		Env:      d.stream.Env,
		Level:    logs.LevelInfo,
		Message:  fields[msgIdx].val,
	}
	if timeIdx >= 0 {
		f := fields[timeIdx]
		var t time.Time
		ok := false
		switch f.kind {
		case kindString:
			t, ok = parseTimeString(f.val)
		case kindNumber:
			t, ok = parseTimeNumber(f.val)
		}
		if ok {
			e.Time = t
		} else {
			timeIdx = -1 // kept as an attribute; the entry gets the arrival time
		}
	}
	if levIdx >= 0 {
		f := fields[levIdx]
		l, ok := "", false
		switch f.kind {
		case kindString:
			l, ok = NormalizeLevel(f.val)
		case kindNumber:
			if n, isInt := smallInt(f.val); isInt {
				l, ok = levelFromNumber(n)
			}
		}
		if ok {
			e.Level = l
		} else {
			levIdx = -1 // unknown level: info, the original kept as an attribute
		}
	}
	n := len(fields) - 1
	if timeIdx >= 0 {
		n--
	}
	if levIdx >= 0 {
		n--
	}
	for i := range fields {
		if i == msgIdx || i == timeIdx || i == levIdx {
			continue
		}
		f := &fields[i]
		if f.kind == kindString || f.kind == kindNumber {
			if t := liftKey(f.key); t != liftNone && lift(&e, t, f.val) {
				continue
			}
		}
		if e.Attrs == nil {
			e.Attrs = make(map[string]string, n)
		}
		e.Attrs[f.key] = f.val
	}
	return e, ""
}

// smallInt parses a JSON integer of at most 9 digits.
func smallInt(s string) (int64, bool) {
	neg := false
	if s != "" && s[0] == '-' {
		neg, s = true, s[1:]
	}
	if s == "" || len(s) > 9 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func truncateForError(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

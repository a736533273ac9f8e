package logs

import (
	"encoding/json"
	"errors"
	"strconv"
)

// decodeEntry reads an entry stored as its tail JSON (appendEntry's
// output). It decodes that shape by hand, several times faster than
// encoding/json, which a backfill or a replay of many stored entries
// notices; anything else (other key spellings, escapes, nulls, numbers in
// other forms) goes to encoding/json, so the result is always what
// json.Unmarshal gives (FuzzDecodeEntry checks it).
func decodeEntry(b []byte, e *Entry) error {
	var d entryDecoder
	d.b = b
	if d.entry(e) && d.end() {
		return nil
	}
	*e = Entry{}
	return json.Unmarshal(b, e)
}

type entryDecoder struct {
	b []byte
	i int
}

var errSlowPath = errors.New("not the stored shape")

func (d *entryDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *entryDecoder) byte(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

func (d *entryDecoder) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// str reads a string of printable ASCII without escapes; anything else
// sends the whole entry to the slow path.
func (d *entryDecoder) str() (string, bool) {
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	start := d.i + 1
	for j := start; j < len(d.b); j++ {
		switch c := d.b[j]; {
		case c == '"':
			d.i = j + 1
			return string(d.b[start:j]), true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return "", false
		}
	}
	return "", false
}

func (d *entryDecoder) int() (int64, bool) {
	d.ws()
	start := d.i
	if d.i < len(d.b) && d.b[d.i] == '-' {
		d.i++
	}
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	if d.i == start || d.i < len(d.b) && (d.b[d.i] == '.' || d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		return 0, false
	}
	n, err := strconv.ParseInt(string(d.b[start:d.i]), 10, 64)
	if err != nil || (d.b[start] == '0' && d.i-start > 1) || (d.b[start] == '-' && (d.i-start == 1 || d.b[start+1] == '0' && d.i-start > 2)) {
		return 0, false
	}
	return n, true
}

func (d *entryDecoder) entry(e *Entry) bool {
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return true
	}
	for {
		key, ok := d.str()
		if !ok || !d.byte(':') {
			return false
		}
		if !d.field(key, e) {
			return false
		}
		if d.byte(',') {
			continue
		}
		return d.byte('}')
	}
}

func (d *entryDecoder) field(key string, e *Entry) bool {
	var ok bool
	switch key {
	case "seq":
		e.Seq, ok = d.int()
	case "time", "observed_time":
		var s string
		if s, ok = d.str(); ok {
			t := &e.Time
			if key == "observed_time" {
				t = &e.Observed
			}
			ok = t.UnmarshalJSON([]byte(strconv.Quote(s))) == nil
		}
	case "service":
		e.Service, ok = d.str()
	case "env":
		e.Env, ok = d.str()
	case "level":
		e.Level, ok = d.str()
	case "message":
		e.Message, ok = d.str()
	case "trace_id":
		e.TraceID, ok = d.str()
	case "span_id":
		e.SpanID, ok = d.str()
	case "host":
		e.Host, ok = d.str()
	case "pod":
		e.Pod, ok = d.str()
	case "container":
		e.Container, ok = d.str()
	case "truncated":
		d.ws()
		switch {
		case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
			e.Truncated, ok, d.i = true, true, d.i+4
		case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
			e.Truncated, ok, d.i = false, true, d.i+5
		}
	case "attributes":
		if e.Attrs == nil {
			e.Attrs = map[string]string{}
		}
		ok = d.object(func(k string) bool {
			v, ok := d.str()
			e.Attrs[k] = v
			return ok
		})
	case "redactions":
		if e.Redactions == nil {
			e.Redactions = map[string]int{}
		}
		ok = d.object(func(k string) bool {
			n, ok := d.int()
			if ok && int64(int(n)) != n {
				return false
			}
			e.Redactions[k] = int(n)
			return ok
		})
	}
	return ok
}

// object reads {"k": value, ...}, value read by val.
func (d *entryDecoder) object(val func(k string) bool) bool {
	if !d.byte('{') {
		return false
	}
	if d.byte('}') {
		return true
	}
	for {
		k, ok := d.str()
		if !ok || !d.byte(':') || !val(k) {
			return false
		}
		if d.byte(',') {
			continue
		}
		return d.byte('}')
	}
}

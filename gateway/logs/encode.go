package logs

import (
	"crypto/sha256"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The tail messages are encoded by hand: encoding/json spends most of its
// time on reflection and on sorting map keys through interfaces, and a batch
// is encoded once per filter key on the publish path (see BenchmarkEncode).
// The output is the same JSON encoding/json produces for Entry, except that
// '<', '>' and '&' are not HTML-escaped; TestAppendEntryMatchesEncodingJSON
// and FuzzAppendEntry check that both decode to the same value.

// appendEntry appends e as a JSON object with the field names of Entry.
func appendEntry(b []byte, e *Entry) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, e.Time)
	if !e.Observed.IsZero() {
		b = append(b, `,"observed_time":`...)
		b = appendTime(b, e.Observed)
	}
	b = append(b, `,"service":`...)
	b = appendString(b, e.Service)
	b = append(b, `,"env":`...)
	b = appendString(b, e.Env)
	b = append(b, `,"level":`...)
	b = appendString(b, e.Level)
	b = append(b, `,"message":`...)
	b = appendString(b, e.Message)
	if len(e.Attrs) > 0 {
		b = append(b, `,"attributes":{`...)
		var arr [16]string
		for i, k := range appendSortedKeys(arr[:0], e.Attrs) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, e.Attrs[k])
		}
		b = append(b, '}')
	}
	b = appendOptString(b, `,"trace_id":`, e.TraceID)
	b = appendOptString(b, `,"span_id":`, e.SpanID)
	b = appendOptString(b, `,"host":`, e.Host)
	b = appendOptString(b, `,"pod":`, e.Pod)
	b = appendOptString(b, `,"container":`, e.Container)
	if len(e.Redactions) > 0 {
		b = append(b, `,"redactions":{`...)
		var arr [8]string
		for i, k := range appendSortedKeys(arr[:0], e.Redactions) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(e.Redactions[k]), 10)
		}
		b = append(b, '}')
	}
	if e.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	return append(b, '}')
}

func sortedKeys[V any](m map[string]V) []string {
	return appendSortedKeys(make([]string, 0, len(m)), m)
}

// appendSortedKeys appends the keys of m to keys, sorted; with a stack
// array as keys it does not allocate for small maps.
func appendSortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendOptString(b []byte, name, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, name...)
	return appendString(b, s)
}

// appendTime matches time.Time.MarshalJSON (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD and
// U+2028/U+2029 are escaped, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// encodeEntries builds the Data of an "entries" message.
func encodeEntries(entries []Entry) []byte {
	b, _ := encodeEntriesSums(entries, false)
	return b
}

// encodeEntriesSums builds the Data of an "entries" message and, if sums,
// the SHA-256 of each entry's JSON as it appears in Data, concatenated:
// what a view's entries digest is made of (see ViewerStats.EntriesDigest).
func encodeEntriesSums(entries []Entry, sums bool) ([]byte, []byte) {
	n := 32
	for i := range entries {
		e := &entries[i]
		n += 256 + len(e.Message) + 48*(len(e.Attrs)+len(e.Redactions))
	}
	return appendEntriesSums(make([]byte, 0, n), entries, sums)
}

// appendEntriesSums is encodeEntriesSums appending the Data to dst.
func appendEntriesSums(b []byte, entries []Entry, sums bool) ([]byte, []byte) {
	var out []byte
	if sums {
		out = make([]byte, 0, sha256.Size*len(entries))
	}
	b = append(b, `{"type":"entries","entries":[`...)
	for i := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		b = appendEntry(b, &entries[i])
		if sums {
			sum := sha256.Sum256(b[start:])
			out = append(out, sum[:]...)
		}
	}
	return append(b, "]}"...), out
}

// encodeDropped builds the Data of a "dropped" message. It carries counts and
// sequence numbers only, never log content.
func encodeDropped(count, from, to int64, reason string) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":"dropped","count":`...)
	b = strconv.AppendInt(b, count, 10)
	b = append(b, `,"from_seq":`...)
	b = strconv.AppendInt(b, from, 10)
	b = append(b, `,"to_seq":`...)
	b = strconv.AppendInt(b, to, 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	return append(b, '}')
}

// encodeGap builds the Data of a "gap" message: entries from..to (inclusive)
// exist(ed) on the stream but cannot be delivered.
func encodeGap(from, to int64, reason string) []byte {
	b := make([]byte, 0, 96)
	b = append(b, `{"type":"gap","from_seq":`...)
	b = strconv.AppendInt(b, from, 10)
	b = append(b, `,"to_seq":`...)
	b = strconv.AppendInt(b, to, 10)
	b = append(b, `,"reason":`...)
	b = appendString(b, reason)
	return append(b, '}')
}

// encodeNotice builds the Data of a "notice" message.
func encodeNotice(code, message string) []byte {
	b := make([]byte, 0, 48+len(code)+len(message))
	b = append(b, `{"type":"notice","message":`...)
	b = appendString(b, message)
	b = append(b, `,"code":`...)
	b = appendString(b, code)
	return append(b, '}')
}

// entrySize approximates the memory an entry holds, for byte retention.
func entrySize(e *Entry) int {
	n := 160 + len(e.Service) + len(e.Env) + len(e.Level) + len(e.Message) +
		len(e.TraceID) + len(e.SpanID) + len(e.Host) + len(e.Pod) + len(e.Container)
	for k, v := range e.Attrs {
		n += len(k) + len(v) + 32
	}
	for k := range e.Redactions {
		n += len(k) + 16
	}
	return n
}

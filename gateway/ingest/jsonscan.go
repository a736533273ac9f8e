package ingest

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The NDJSON path is the hottest code of ingest, so it has its own JSON
// scanner: one pass over a line, no reflection, no map[string]any, string
// values that need no unescaping are substrings of the line (one allocation
// per line). It accepts exactly what encoding/json accepts for an object and
// decodes strings the same way (invalid UTF-8 and lone surrogates become
// U+FFFD); FuzzScanObject checks it against encoding/json.

// valueKind is the JSON type of a flattened field.
type valueKind uint8

const (
	kindString valueKind = iota
	kindNumber
	kindBool
	kindNull
	kindArray  // val is the array's JSON text
	kindObject // an empty object; val is "{}"
)

// field is one flattened member: nested object keys are joined with '.'.
type field struct {
	key  string
	val  string
	kind valueKind
}

// maxDepth bounds object nesting (encoding/json allows 10000).
const maxDepth = 1000

type scanner struct {
	s      string
	pos    int
	fields []field
	err    string
	// keys interns flattened nested keys ("http.status") across the lines of
	// one body, so that each is allocated once per call, not once per line.
	keys   map[string]string
	keybuf []byte
}

// maxInternedKeys bounds the key cache of one scanner.
const maxInternedKeys = 4096

func (sc *scanner) joinKey(prefix, key string) string {
	sc.keybuf = append(append(append(sc.keybuf[:0], prefix...), '.'), key...)
	if k, ok := sc.keys[string(sc.keybuf)]; ok {
		return k
	}
	k := string(sc.keybuf)
	if sc.keys == nil {
		sc.keys = make(map[string]string)
	}
	if len(sc.keys) < maxInternedKeys {
		sc.keys[k] = k
	}
	return k
}

// scanObject parses s, which must be one JSON object with optional
// surrounding whitespace, appending its flattened members to fields.
func (sc *scanner) scanObject(s string) bool {
	sc.s, sc.pos, sc.err = s, 0, ""
	sc.fields = sc.fields[:0]
	sc.skipSpace()
	if sc.pos >= len(sc.s) || sc.s[sc.pos] != '{' {
		return sc.fail("not a JSON object")
	}
	if !sc.object("", 1) {
		return false
	}
	sc.skipSpace()
	if sc.pos != len(sc.s) {
		return sc.fail("invalid character after object")
	}
	return true
}

func (sc *scanner) fail(msg string) bool {
	if sc.err == "" {
		sc.err = msg + " at offset " + strconv.Itoa(sc.pos)
	}
	return false
}

func (sc *scanner) skipSpace() {
	for sc.pos < len(sc.s) {
		switch sc.s[sc.pos] {
		case ' ', '\t', '\n', '\r':
			sc.pos++
		default:
			return
		}
	}
}

// object parses an object at sc.pos ('{') with keys under prefix.
func (sc *scanner) object(prefix string, depth int) bool {
	if depth > maxDepth {
		return sc.fail("nesting too deep")
	}
	sc.pos++ // '{'
	sc.skipSpace()
	if sc.pos < len(sc.s) && sc.s[sc.pos] == '}' {
		sc.pos++
		if prefix != "" {
			sc.fields = append(sc.fields, field{key: prefix, val: "{}", kind: kindObject})
		}
		return true
	}
	for {
		sc.skipSpace()
		if sc.pos >= len(sc.s) || sc.s[sc.pos] != '"' {
			return sc.fail("expected object key")
		}
		key, ok := sc.str()
		if !ok {
			return false
		}
		if prefix != "" {
			key = sc.joinKey(prefix, key)
		}
		sc.skipSpace()
		if sc.pos >= len(sc.s) || sc.s[sc.pos] != ':' {
			return sc.fail("expected ':'")
		}
		sc.pos++
		sc.skipSpace()
		if sc.pos >= len(sc.s) {
			return sc.fail("unexpected end")
		}
		switch c := sc.s[sc.pos]; c {
		case '"':
			v, ok := sc.str()
			if !ok {
				return false
			}
			sc.fields = append(sc.fields, field{key: key, val: v, kind: kindString})
		case '{':
			if !sc.object(key, depth+1) {
				return false
			}
		case '[':
			start := sc.pos
			if !sc.skipValue(depth + 1) {
				return false
			}
			sc.fields = append(sc.fields, field{key: key, val: sc.s[start:sc.pos], kind: kindArray})
		default:
			start := sc.pos
			kind, ok := sc.scalar()
			if !ok {
				return false
			}
			sc.fields = append(sc.fields, field{key: key, val: sc.s[start:sc.pos], kind: kind})
		}
		sc.skipSpace()
		if sc.pos >= len(sc.s) {
			return sc.fail("unexpected end")
		}
		switch sc.s[sc.pos] {
		case ',':
			sc.pos++
		case '}':
			sc.pos++
			return true
		default:
			return sc.fail("expected ',' or '}'")
		}
	}
}

// scalar parses a number, true, false or null.
func (sc *scanner) scalar() (valueKind, bool) {
	rest := sc.s[sc.pos:]
	switch {
	case len(rest) >= 4 && rest[:4] == "true":
		sc.pos += 4
		return kindBool, true
	case len(rest) >= 5 && rest[:5] == "false":
		sc.pos += 5
		return kindBool, true
	case len(rest) >= 4 && rest[:4] == "null":
		sc.pos += 4
		return kindNull, true
	}
	return kindNumber, sc.number()
}

// number validates a JSON number: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?
func (sc *scanner) number() bool {
	s, i := sc.s, sc.pos
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		sc.pos = i
		return sc.fail("invalid value")
	}
	if i < len(s) && s[i] == '.' {
		i++
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			sc.pos = i
			return sc.fail("invalid number")
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			sc.pos = i
			return sc.fail("invalid number")
		}
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	}
	sc.pos = i
	return true
}

// skipValue validates any JSON value at sc.pos without keeping it.
func (sc *scanner) skipValue(depth int) bool {
	if depth > maxDepth {
		return sc.fail("nesting too deep")
	}
	if sc.pos >= len(sc.s) {
		return sc.fail("unexpected end")
	}
	switch sc.s[sc.pos] {
	case '"':
		_, ok := sc.strRaw()
		return ok
	case '[', '{':
		open := sc.s[sc.pos]
		close := byte(']')
		if open == '{' {
			close = '}'
		}
		sc.pos++
		sc.skipSpace()
		if sc.pos < len(sc.s) && sc.s[sc.pos] == close {
			sc.pos++
			return true
		}
		for {
			sc.skipSpace()
			if open == '{' {
				if sc.pos >= len(sc.s) || sc.s[sc.pos] != '"' {
					return sc.fail("expected object key")
				}
				if _, ok := sc.strRaw(); !ok {
					return false
				}
				sc.skipSpace()
				if sc.pos >= len(sc.s) || sc.s[sc.pos] != ':' {
					return sc.fail("expected ':'")
				}
				sc.pos++
				sc.skipSpace()
			}
			if !sc.skipValue(depth + 1) {
				return false
			}
			sc.skipSpace()
			if sc.pos >= len(sc.s) {
				return sc.fail("unexpected end")
			}
			switch sc.s[sc.pos] {
			case ',':
				sc.pos++
			case close:
				sc.pos++
				return true
			default:
				return sc.fail("expected ',' or '" + string(close) + "'")
			}
		}
	default:
		_, ok := sc.scalar()
		return ok
	}
}

// strRaw validates a string at sc.pos ('"') and reports whether it needs
// decoding (escapes or non-ASCII that may be invalid UTF-8).
func (sc *scanner) strRaw() (plain bool, ok bool) {
	s := sc.s
	i := sc.pos + 1
	plain = true
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"':
			sc.pos = i + 1
			return plain, true
		case c == '\\':
			plain = false
			if i+1 >= len(s) {
				sc.pos = i
				return false, sc.fail("unexpected end in string")
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || !isHex4(s[i+2:i+6]) {
					sc.pos = i
					return false, sc.fail("invalid \\u escape")
				}
				i += 6
			default:
				sc.pos = i
				return false, sc.fail("invalid escape")
			}
		case c < 0x20:
			sc.pos = i
			return false, sc.fail("control character in string")
		case c >= utf8.RuneSelf:
			plain = false
			i++
		default:
			i++
		}
	}
	sc.pos = i
	return false, sc.fail("unterminated string")
}

func isHex4(s string) bool {
	for i := 0; i < 4; i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(s string) rune {
	var r rune
	for i := 0; i < 4; i++ {
		c := s[i]
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// str parses a string at sc.pos and returns its decoded value.
func (sc *scanner) str() (string, bool) {
	start := sc.pos + 1
	plain, ok := sc.strRaw()
	if !ok {
		return "", false
	}
	raw := sc.s[start : sc.pos-1]
	if plain || (!hasBackslash(raw) && utf8.ValidString(raw)) {
		return raw, true
	}
	return unquote(raw), true
}

func hasBackslash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			return true
		}
	}
	return false
}

// unquote decodes a validated string body the way encoding/json does.
func unquote(s string) string {
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			switch s[i+1] {
			case '"', '\\', '/':
				b = append(b, s[i+1])
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r := hex4(s[i+2 : i+6])
				i += 6
				if utf16.IsSurrogate(r) {
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						if d := utf16.DecodeRune(r, hex4(s[i+2:i+6])); d != unicode.ReplacementChar {
							b = utf8.AppendRune(b, d)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, r)
				continue
			}
			i += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = utf8.AppendRune(b, unicode.ReplacementChar)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
		}
	}
	return string(b)
}

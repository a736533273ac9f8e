package audit

import (
	"bytes"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// fastColumns reads the search columns from a record in the exact form
// EncodeTail and BuildRecord write (members in canonical order, no
// duplicates, strings without escapes), about ten times faster than
// encoding/json; ok is false for anything else, and the caller then decodes
// with encoding/json. Where it answers, it answers what encoding/json
// would: the canonical form leaves no room for json's case-insensitive or
// last-duplicate-wins matching, and the values it skips are validated.
func fastColumns(rec []byte) (c Columns, ok bool) { return fastColumnsLike(rec, nil) }

// fastColumnsLike is fastColumns that reuses like's strings where the record
// holds the same value (the verifier passes the stored columns, which
// nearly always agree), so an intact row costs no string copies.
func fastColumnsLike(rec []byte, like *Columns) (c Columns, ok bool) {
	if like == nil {
		like = &Columns{}
	}
	s := fastScanner{b: rec}
	c.TimeNS = time.Time{}.UnixNano() // what encoding/json leaves without a "time"
	ok = s.object(topMembers, func(key string) bool {
		switch key {
		case "id":
			return s.strLike(&c.ID, like.ID)
		case "action":
			return s.strLike(&c.Action, like.Action)
		case "outcome":
			return s.strLike(&c.Outcome, like.Outcome)
		case "request_id":
			return s.strLike(&c.RequestID, like.RequestID)
		case "time":
			start := s.i
			if _, ok := s.strBytes(); !ok {
				return false
			}
			var t time.Time
			if t.UnmarshalJSON(s.b[start:s.i]) != nil {
				return false
			}
			c.TimeNS = t.UnixNano()
			return true
		case "actor":
			return s.object(actorMembers, func(key string) bool {
				switch key {
				case "subject":
					return s.strLike(&c.ActorSubject, like.ActorSubject)
				case "email":
					return s.strLike(&c.ActorEmail, like.ActorEmail)
				case "groups":
					return s.skipComposite('[')
				}
				return s.skipStr()
			})
		case "target":
			return s.object(targetMembers, func(key string) bool {
				switch key {
				case "request_id":
					return s.strLike(&c.TargetRequestID, like.TargetRequestID)
				case "grant_id":
					return s.strLike(&c.GrantID, like.GrantID)
				case "service":
					return s.strLike(&c.Service, like.Service)
				case "env":
					return s.strLike(&c.Env, like.Env)
				}
				return s.skipStr()
			})
		case "seq", "schema":
			return s.digits()
		case "details":
			return s.skipComposite('{')
		}
		return s.skipStr()
	})
	return c, ok && s.i == len(s.b)
}

// Canonical member order of a record, its actor and its target (the
// struct field order of the encoders).
var (
	topMembers = []string{"seq", "prev_hash", "id", "schema", "time", "action", "actor", "source_addr",
		"user_agent", "request_id", "target", "outcome", "reason", "decision_id", "policy_revision", "details"}
	actorMembers  = []string{"kind", "issuer", "subject", "email", "name", "groups", "id"}
	targetMembers = []string{"request_id", "grant_id", "review_id", "source_id", "service", "env"}
)

type fastScanner struct {
	b []byte
	i int
}

func (s *fastScanner) eat(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads {"k":v,...} whose keys appear in order (each at most once),
// calling member for each value.
func (s *fastScanner) object(order []string, member func(key string) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	next := 0
	for {
		key, ok := s.strBytes()
		if !ok || !s.eat(':') {
			return false
		}
		for next < len(order) && order[next] != string(key) { // no allocation
			next++
		}
		if next == len(order) || !member(order[next]) { // the table's copy of the key
			return false
		}
		next++
		if s.eat('}') {
			return true
		}
		if !s.eat(',') {
			return false
		}
	}
}

// str reads a string without escapes or control characters.
func (s *fastScanner) str(dst *string) bool {
	b, ok := s.strBytes()
	if ok {
		*dst = string(b)
	}
	return ok
}

// strLike is str that keeps like when the string equals it (no copy).
func (s *fastScanner) strLike(dst *string, like string) bool {
	b, ok := s.strBytes()
	if !ok {
		return false
	}
	if string(b) == like { // compared without allocating
		*dst = like
	} else {
		*dst = string(b)
	}
	return true
}

// strBytes is str without a copy: the string's bytes inside the record.
func (s *fastScanner) strBytes() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	rest := s.b[s.i:]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false
	}
	for _, c := range rest[:end] {
		if c < 0x20 || c == '\\' {
			return nil, false
		}
	}
	if !utf8.Valid(rest[:end]) {
		return nil, false // encoding/json would substitute U+FFFD
	}
	s.i += end + 1
	return rest[:end], true
}

// skipStr skips a valid JSON string, escapes allowed.
func (s *fastScanner) skipStr() bool {
	if !s.eat('"') {
		return false
	}
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			s.i++
			if s.i >= len(s.b) {
				return false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if s.i+4 >= len(s.b) || !isHex4(s.b[s.i+1:s.i+5]) {
					return false
				}
				s.i += 4
			default:
				return false
			}
		}
	}
	return false
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// digits reads a non-negative integer without leading zeros.
func (s *fastScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - start
	return n > 0 && n <= 19 && (n == 1 || s.b[start] != '0')
}

// skipComposite skips an object or array opened by open and checks it is
// valid JSON.
func (s *fastScanner) skipComposite(open byte) bool {
	if s.i >= len(s.b) || s.b[s.i] != open {
		return false
	}
	start, depth, inStr := s.i, 0, false
	for ; s.i < len(s.b); s.i++ {
		c := s.b[s.i]
		switch {
		case inStr && c == '\\':
			s.i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				s.i++
				return json.Valid(s.b[start:s.i])
			}
		}
	}
	return false
}

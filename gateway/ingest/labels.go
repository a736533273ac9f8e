package ingest

import (
	"fmt"
	"strconv"
)

// ParseLabels parses a Prometheus/Loki label set such as
// `{app="checkout", env="prod"}`: names are identifiers or quoted strings,
// values are double-quoted (or backquoted) Go string literals, a trailing
// comma is allowed, a repeated name is an error.
func ParseLabels(s string) (map[string]string, error) {
	p := labelParser{s: s}
	p.space()
	if !p.eat('{') {
		return nil, p.errorf("expected '{'")
	}
	out := make(map[string]string)
	for {
		p.space()
		if p.eat('}') {
			break
		}
		name, err := p.name()
		if err != nil {
			return nil, err
		}
		p.space()
		if !p.eat('=') {
			return nil, p.errorf("expected '=' after label %q", name)
		}
		p.space()
		value, err := p.quoted()
		if err != nil {
			return nil, err
		}
		if _, dup := out[name]; dup {
			return nil, p.errorf("duplicate label %q", name)
		}
		out[name] = value
		p.space()
		if p.eat(',') {
			continue
		}
		if !p.eat('}') {
			return nil, p.errorf("expected ',' or '}'")
		}
		break
	}
	p.space()
	if p.pos != len(p.s) {
		return nil, p.errorf("unexpected data after '}'")
	}
	return out, nil
}

type labelParser struct {
	s   string
	pos int
}

func (p *labelParser) errorf(format string, args ...any) error {
	return badBody("loki labels", fmt.Sprintf(format, args...)+" at offset "+strconv.Itoa(p.pos), nil)
}

func (p *labelParser) space() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

func (p *labelParser) eat(c byte) bool {
	if p.pos < len(p.s) && p.s[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *labelParser) name() (string, error) {
	if p.pos < len(p.s) && (p.s[p.pos] == '"' || p.s[p.pos] == '`') {
		n, err := p.quoted()
		if err == nil && n == "" {
			return "", p.errorf("empty label name")
		}
		return n, err
	}
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || (p.pos > start && '0' <= c && c <= '9') {
			p.pos++
			continue
		}
		break
	}
	if p.pos == start {
		return "", p.errorf("expected label name")
	}
	return p.s[start:p.pos], nil
}

// quoted consumes a double-quoted or backquoted string and unquotes it.
func (p *labelParser) quoted() (string, error) {
	if p.pos >= len(p.s) || (p.s[p.pos] != '"' && p.s[p.pos] != '`') {
		return "", p.errorf("expected quoted string")
	}
	q := p.s[p.pos]
	start := p.pos
	i := p.pos + 1
	for i < len(p.s) && p.s[i] != q {
		if q == '"' && p.s[i] == '\\' {
			i++
		}
		i++
	}
	if i >= len(p.s) {
		return "", p.errorf("unterminated string")
	}
	v, err := strconv.Unquote(p.s[start : i+1])
	if err != nil {
		return "", p.errorf("invalid string %s", strconv.Quote(truncateForError(p.s[start:i+1])))
	}
	p.pos = i + 1
	return v, nil
}

package slogship

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Reasons a control frame, or a rule in one, is ignored (Stats.Ignored).
const (
	ReasonMalformed    = "malformed"     // not a JSON levels frame
	ReasonUnknownType  = "unknown_type"  // a frame type this library does not know
	ReasonOtherService = "other_service" // a rule for another service or env
	ReasonUnknownLevel = "unknown_level" // a rule's level is not trace or debug
	ReasonBadScope     = "bad_scope"     // a rule's scope is not string to string
	ReasonTooMany      = "too_many"      // more rules than maxRules
)

const (
	maxFrameBytes = 64 << 10
	maxRules      = 256
	maxScope      = 16
)

// Rule is one raised level in force for this service: records at Level or
// above whose attributes include every Scope pair (none: all records) are
// enabled.
type Rule struct {
	Level slog.Level
	Scope []ScopeAttr
	// Grants are the loggate grants holding the level raised.
	Grants []string
}

// ScopeAttr is one attribute a record must carry for a scoped rule.
type ScopeAttr struct{ Key, Value string }

// Frame is a decoded control frame.
type Frame struct {
	// Type is "levels" for a level state, or "end" when the gateway is
	// going away; other types are ignored.
	Type    string
	Version uint64
	Rules   []Rule
	// Ignored counts the rules left out, by reason.
	Ignored map[string]int
}

// ErrIgnored wraps the reason a whole frame is ignored.
var ErrIgnored = errors.New("control frame ignored")

type wireRule struct {
	Service string          `json:"service"`
	Env     string          `json:"env"`
	Level   string          `json:"level"`
	Scope   json.RawMessage `json:"scope"`
	Grants  []string        `json:"grants"`
}

type wireFrame struct {
	Type    string     `json:"type"`
	Version uint64     `json:"version"`
	Levels  []wireRule `json:"levels"`
}

// IgnoredError says why a frame was ignored; Reason is one of the Reason*
// constants.
type IgnoredError struct {
	Reason string
	Detail string
}

func (e *IgnoredError) Error() string {
	return fmt.Sprintf("control frame ignored (%s): %s", e.Reason, e.Detail)
}
func (e *IgnoredError) Unwrap() error { return ErrIgnored }

// DecodeFrame decodes a control frame for service/env. A frame that is not
// a levels frame of known shape is an *IgnoredError. Rules of a valid
// frame that name another stream, an unknown level or a bad scope are left
// out and counted in Frame.Ignored; the rest of the frame applies.
func DecodeFrame(data []byte, service, env string) (Frame, error) {
	if len(data) > maxFrameBytes {
		return Frame{}, &IgnoredError{ReasonMalformed, fmt.Sprintf("frame of %d bytes", len(data))}
	}
	var w wireFrame
	if err := json.Unmarshal(data, &w); err != nil {
		return Frame{}, &IgnoredError{ReasonMalformed, err.Error()}
	}
	switch w.Type {
	case "levels":
	case "end":
		return Frame{Type: "end"}, nil
	default:
		return Frame{}, &IgnoredError{ReasonUnknownType, fmt.Sprintf("type %.40q", w.Type)}
	}
	f := Frame{Type: w.Type, Version: w.Version}
	ignore := func(reason string) {
		if f.Ignored == nil {
			f.Ignored = map[string]int{}
		}
		f.Ignored[reason]++
	}
	for i, wr := range w.Levels {
		if i >= maxRules {
			ignore(ReasonTooMany)
			continue
		}
		if wr.Service != service || wr.Env != env {
			ignore(ReasonOtherService)
			continue
		}
		lvl, ok := parseLevel(wr.Level)
		if !ok {
			ignore(ReasonUnknownLevel)
			continue
		}
		scope, ok := parseScope(wr.Scope)
		if !ok {
			ignore(ReasonBadScope)
			continue
		}
		f.Rules = append(f.Rules, Rule{Level: lvl, Scope: scope, Grants: wr.Grants})
	}
	return f, nil
}

// parseLevel accepts the levels a grant may raise to.
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "trace":
		return slog.LevelDebug - 4, true
	}
	return 0, false
}

func parseScope(raw json.RawMessage) ([]ScopeAttr, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, true
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil || len(m) > maxScope {
		return nil, false
	}
	out := make([]ScopeAttr, 0, len(m))
	for k, v := range m {
		if k == "" {
			return nil, false
		}
		out = append(out, ScopeAttr{k, v})
	}
	return out, true
}

// levelName is how a slog level is written for loggate's ingest.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	case l < slog.LevelError+4:
		return "error"
	}
	return "fatal"
}

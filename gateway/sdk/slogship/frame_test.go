package slogship

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
)

func TestDecodeFrame(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         string
		wantErr    string // IgnoredError reason
		wantRules  int
		wantIgnore map[string]int
	}{
		{"empty state", `{"type":"levels","version":3,"levels":[]}`, "", 0, nil},
		{"whole service", `{"type":"levels","version":4,"levels":[{"service":"checkout","env":"staging","level":"debug","grants":["grt_1"]}]}`, "", 1, nil},
		{"scoped", `{"type":"levels","version":4,"levels":[{"service":"checkout","env":"staging","level":"trace","scope":{"tenant":"acme"}}]}`, "", 1, nil},
		{"another service", `{"type":"levels","version":5,"levels":[{"service":"payments","env":"staging","level":"debug"}]}`, "", 0, map[string]int{ReasonOtherService: 1}},
		{"another env", `{"type":"levels","version":5,"levels":[{"service":"checkout","env":"prod","level":"debug"}]}`, "", 0, map[string]int{ReasonOtherService: 1}},
		{"unknown level", `{"type":"levels","version":5,"levels":[{"service":"checkout","env":"staging","level":"verbose"}]}`, "", 0, map[string]int{ReasonUnknownLevel: 1}},
		{"info is no raise", `{"type":"levels","version":5,"levels":[{"service":"checkout","env":"staging","level":"info"}]}`, "", 0, map[string]int{ReasonUnknownLevel: 1}},
		{"bad scope", `{"type":"levels","version":5,"levels":[{"service":"checkout","env":"staging","level":"debug","scope":{"n":1}}]}`, "", 0, map[string]int{ReasonBadScope: 1}},
		{"one good one bad", `{"type":"levels","version":6,"levels":[{"service":"checkout","env":"staging","level":"debug"},{"service":"x","env":"y","level":"debug"}]}`, "", 1, map[string]int{ReasonOtherService: 1}},
		{"malformed", `{"type":"levels",`, ReasonMalformed, 0, nil},
		{"not an object", `[1,2]`, ReasonMalformed, 0, nil},
		{"levels not a list", `{"type":"levels","levels":{}}`, ReasonMalformed, 0, nil},
		{"unknown type", `{"type":"subscribe"}`, ReasonUnknownType, 0, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := DecodeFrame([]byte(tc.in), "checkout", "staging")
			if tc.wantErr != "" {
				var ie *IgnoredError
				if !errors.As(err, &ie) || ie.Reason != tc.wantErr || !errors.Is(err, ErrIgnored) {
					t.Fatalf("err = %v, want an IgnoredError %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if len(f.Rules) != tc.wantRules {
				t.Errorf("rules = %+v, want %d", f.Rules, tc.wantRules)
			}
			for k, v := range tc.wantIgnore {
				if f.Ignored[k] != v {
					t.Errorf("ignored[%s] = %d, want %d (all %v)", k, f.Ignored[k], v, f.Ignored)
				}
			}
			if len(tc.wantIgnore) == 0 && len(f.Ignored) != 0 {
				t.Errorf("ignored = %v, want none", f.Ignored)
			}
		})
	}
}

// FuzzDecodeFrame: no input panics, and every rule decoded is for this
// stream at a raised level.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"levels","version":1,"levels":[{"service":"checkout","env":"staging","level":"debug","scope":{"tenant":"acme"}}]}`,
		`{"type":"end","reason":"shutdown"}`,
		`{"type":"levels","levels":[{"service":"checkout","env":"staging","level":"TRACE","scope":null}]}`,
		`{"type":"levels","levels":[{"service":"checkout","env":"staging","level":"debug","scope":{"":""}}]}`,
		`{}`, `null`, `"levels"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := DecodeFrame(data, "checkout", "staging")
		if err != nil {
			if !errors.Is(err, ErrIgnored) {
				t.Fatalf("error %v is not ErrIgnored", err)
			}
			return
		}
		for _, r := range fr.Rules {
			if r.Level >= slog.LevelInfo {
				t.Fatalf("rule %+v does not raise the level", r)
			}
			for _, a := range r.Scope {
				if a.Key == "" {
					t.Fatalf("rule %+v has an empty scope key", r)
				}
			}
		}
		_ = newRuleSet(fr.Rules)
	})
}

// FuzzWriteString: the hand-written JSON string encoder agrees with
// encoding/json on every input, invalid UTF-8 included.
func FuzzWriteString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\" back\\slash", "ctl\x00\x1f\n\t\r", "é ✓ 😀", "\xff\xfe bad", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf bytes.Buffer
		writeString(&buf, s)
		var got string
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("writeString(%q) = %s: not JSON: %v", s, buf.Bytes(), err)
		}
		std, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(std, &want)
		if got != want {
			t.Fatalf("writeString(%q) decodes to %q, encoding/json to %q", s, got, want)
		}
	})
}

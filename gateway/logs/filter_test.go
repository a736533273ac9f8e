package logs

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// filterEntries is a small stream covering every filter dimension.
func filterEntries() []Entry {
	es := makeEntries("m", 6)
	es[0].Level, es[0].Message = LevelDebug, "cache miss key=a"
	es[1].Level, es[1].Message = LevelInfo, "GET /health 200"
	es[2].Level, es[2].Message = LevelWarn, "slow query 1200ms"
	es[3].Level, es[3].Message = LevelError, "GET /orders 500 timeout"
	es[4].Level, es[4].Message = LevelFatal, "panic: nil map"
	es[5].Level, es[5].Message = "", "no level"
	es[1].Attrs = map[string]string{"http.status": "200", "region": "eu"}
	es[3].Attrs = map[string]string{"http.status": "500", "region": "eu"}
	es[4].Pod = "api-7f9"
	return es
}

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		name   string
		filter Filter
		want   []int // indexes into filterEntries
	}{
		{"zero filter matches all", Filter{}, []int{0, 1, 2, 3, 4, 5}},
		{"min level warn", Filter{MinLevel: LevelWarn}, []int{2, 3, 4}},
		{"min level trace drops unknown level", Filter{MinLevel: LevelTrace}, []int{0, 1, 2, 3, 4}},
		{"grep", Filter{Grep: `^GET `}, []int{1, 3}},
		{"grep case-insensitive", Filter{Grep: `(?i)PANIC|TIMEOUT`}, []int{3, 4}},
		{"exclude", Filter{Exclude: `/health`}, []int{0, 2, 3, 4, 5}},
		{"grep and exclude", Filter{Grep: `GET`, Exclude: `200`}, []int{3}},
		{"attr", Filter{Attrs: map[string]string{"http.status": "500"}}, []int{3}},
		{"two attrs", Filter{Attrs: map[string]string{"region": "eu", "http.status": "200"}}, []int{1}},
		{"attr names entry field", Filter{Attrs: map[string]string{"pod": "api-7f9"}}, []int{4}},
		{"attr absent", Filter{Attrs: map[string]string{"region": "us"}}, nil},
		{"level and attr", Filter{MinLevel: LevelError, Attrs: map[string]string{"region": "eu"}}, []int{3}},
	}
	es := filterEntries()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.filter.Compile()
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			var got []int
			for i := range es {
				if m.Match(&es[i]) {
					got = append(got, i)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterCompileErrors(t *testing.T) {
	long := make([]byte, maxPatternLen+1)
	for i := range long {
		long[i] = 'a'
	}
	many := map[string]string{}
	for i := range maxFilterAttr + 1 {
		many[string(rune('a'+i%26))+string(rune('a'+i/26))] = "x"
	}
	tests := []struct {
		name   string
		filter Filter
	}{
		{"unknown level", Filter{MinLevel: "verbose"}},
		{"bad grep", Filter{Grep: `(unclosed`}},
		{"bad exclude", Filter{Exclude: `[z-a]`}},
		{"backreference is not RE2", Filter{Grep: `(a)\1`}},
		{"pattern too long", Filter{Grep: string(long)}},
		{"attribute value too long", Filter{Attrs: map[string]string{"pod": strings.Repeat("p", maxFilterBytes)}}},
		{"filter too long", Filter{Grep: string(long[:maxPatternLen]), Exclude: string(long[:maxPatternLen]),
			Attrs: map[string]string{"a": string(long[:maxPatternLen]), "b": string(long[:maxPatternLen])}}},
		{"too many attrs", Filter{Attrs: many}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.filter.Compile()
			if !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("Compile() error = %v, want ErrInvalidFilter", err)
			}
		})
	}
	h := newTestHub(t, HubConfig{})
	if _, err := h.Subscribe(testStream, SubscribeOptions{Filter: Filter{Grep: "("}}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("Subscribe with bad filter: %v, want ErrInvalidFilter", err)
	}
}

func TestFilterKeys(t *testing.T) {
	key := func(f Filter) string {
		t.Helper()
		m, err := f.Compile()
		if err != nil {
			t.Fatal(err)
		}
		return m.Key()
	}
	same := [][2]Filter{
		{{}, {Attrs: map[string]string{}}},
		{{Attrs: map[string]string{"a": "1", "b": "2"}}, {Attrs: map[string]string{"b": "2", "a": "1"}}},
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("keys differ for equal filters %+v and %+v", p[0], p[1])
		}
	}
	different := [][2]Filter{
		{{Grep: "a"}, {Exclude: "a"}},
		{{Grep: `a" x="b`}, {Grep: "a", Exclude: "b"}},
		{{Attrs: map[string]string{"a": "1 a=b"}}, {Attrs: map[string]string{"a": "1", "b": ""}}},
		{{MinLevel: LevelInfo}, {MinLevel: LevelWarn}},
	}
	for _, p := range different {
		if key(p[0]) == key(p[1]) {
			t.Errorf("equal keys %q for different filters %+v and %+v", key(p[0]), p[0], p[1])
		}
	}
}

func TestFiltersOnLiveStream(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	warn := subscribe(t, h, SubscribeOptions{Filter: Filter{MinLevel: LevelWarn}})
	eu := subscribe(t, h, SubscribeOptions{Filter: Filter{Attrs: map[string]string{"region": "eu"}, Exclude: "200"}})
	publish(t, h, filterEntries())
	if got, want := seqs(recvEntries(t, warn, 3)), []int64{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("warn viewer got %v, want %v", got, want)
	}
	if got, want := seqs(recvEntries(t, eu, 1)), []int64{4}; !slices.Equal(got, want) {
		t.Errorf("eu viewer got %v, want %v", got, want)
	}
	// A batch with no match for a viewer sends it nothing.
	es := makeEntries("quiet", 2)
	es[0].Level, es[1].Level = LevelDebug, LevelDebug
	publish(t, h, es)
	noMessage(t, warn)
}

func TestSetFilterMidStream(t *testing.T) {
	h := newTestHub(t, HubConfig{})
	v := subscribe(t, h, SubscribeOptions{Filter: Filter{MinLevel: LevelError}})
	publish(t, h, filterEntries()) // seqs 1..6; error+fatal are 4, 5
	if got, want := seqs(recvEntries(t, v, 2)), []int64{4, 5}; !slices.Equal(got, want) {
		t.Fatalf("before SetFilter got %v, want %v", got, want)
	}
	if err := v.SetFilter(Filter{Grep: "^GET"}); err != nil {
		t.Fatalf("SetFilter: %v", err)
	}
	publish(t, h, filterEntries()) // seqs 7..12; GET lines are 8, 10
	if got, want := seqs(recvEntries(t, v, 2)), []int64{8, 10}; !slices.Equal(got, want) {
		t.Errorf("after SetFilter got %v, want %v", got, want)
	}
	if err := v.SetFilter(Filter{MinLevel: "loud"}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("SetFilter(bad) = %v, want ErrInvalidFilter", err)
	}
	// The failed SetFilter kept the previous filter.
	publish(t, h, filterEntries()) // seqs 13..18; GET lines are 14, 16
	if got, want := seqs(recvEntries(t, v, 2)), []int64{14, 16}; !slices.Equal(got, want) {
		t.Errorf("after failed SetFilter got %v, want %v", got, want)
	}
	if got := len(h.Streams()); got != 1 {
		t.Fatalf("streams = %d", got)
	}
}

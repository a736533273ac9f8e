package logs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func sampleEntry() Entry {
	return Entry{
		Seq:      42,
		Time:     time.Date(2026, 9, 1, 12, 0, 0, 123456789, time.UTC),
		Observed: time.Date(2026, 9, 1, 12, 0, 1, 0, time.FixedZone("", 2*3600)),
		Service:  "api", Env: "prod", Level: LevelError,
		Message:    "GET /x \"quoted\" \\ tab\t nl\n ctrl\x01 <html> & \u2028 é 🚀 bad\xff",
		Attrs:      map[string]string{"z": "last", "a": "first", "http.status": "500"},
		TraceID:    "4bf92f3577b34da6a3ce929d0e0e4736",
		SpanID:     "00f067aa0ba902b7",
		Host:       "node-1",
		Pod:        "api-7f9",
		Container:  "app",
		Redactions: map[string]int{"jwt": 1, "email": 2},
		Truncated:  true,
	}
}

// TestAppendEntryMatchesEncodingJSON checks the hand encoder against
// encoding/json: same bytes once HTML escaping is undone, same value decoded.
func TestAppendEntryMatchesEncodingJSON(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
	}{
		{"all fields", sampleEntry()},
		{"minimal", Entry{Service: "s", Env: "e", Level: LevelInfo}},
		{"empty maps omitted", Entry{Service: "s", Attrs: map[string]string{}, Redactions: map[string]int{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendEntry(nil, &tt.e)
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(&tt.e); err != nil {
				t.Fatal(err)
			}
			if w := strings.TrimSuffix(want.String(), "\n"); string(got) != w {
				t.Errorf("appendEntry =\n%s\nencoding/json =\n%s", got, w)
			}
		})
	}
}

func TestMessageShapes(t *testing.T) {
	e := sampleEntry()
	tests := []struct {
		name   string
		data   []byte
		golden string
	}{
		{"entries", encodeEntries([]Entry{e}), "entries.json"},
		{"dropped", encodeDropped(17, 100, 140, "slow_client"), "dropped.json"},
		{"gap", encodeGap(5, 99, "retention"), "gap.json"},
		{"notice", encodeNotice("sampling", "more than 5000 entries/s"), "notice.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid(tt.data) {
				t.Fatalf("invalid JSON: %s", tt.data)
			}
			path := filepath.Join("testdata", tt.golden)
			if os.Getenv("UPDATE_GOLDEN") != "" {
				os.WriteFile(path, append(tt.data, '\n'), 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(tt.data) + "\n"; got != string(want) {
				t.Errorf("message =\n%s\nwant (%s) =\n%s", got, path, want)
			}
		})
	}
}

func FuzzAppendEntry(f *testing.F) {
	f.Add("hello", "k", "v", "svc", int64(1))
	f.Add("\x00\x1f\"\\\u2028\u2029<>&\xff\xfe", "\xc3", "\U0001F680", "", int64(-5))
	f.Add(strings.Repeat("é", 100), "", "", "s", int64(1<<62))
	f.Fuzz(func(t *testing.T, msg, k, v, svc string, seq int64) {
		e := Entry{Seq: seq, Time: time.Unix(seq%1e10, seq%1e9).UTC(), Service: svc, Message: msg,
			Level: LevelWarn, Attrs: map[string]string{k: v}, Redactions: map[string]int{k: int(seq % 1000)}}
		data := appendEntry(nil, &e)
		if !utf8.Valid(data) {
			t.Fatalf("invalid UTF-8 output: %q", data)
		}
		var got Entry
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("output is not JSON: %v: %q", err, data)
		}
		want, err := json.Marshal(&e)
		if err != nil {
			t.Skip("encoding/json cannot encode it either")
		}
		var ref Entry
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(ref, got); diff != "" {
			t.Errorf("decoded differently from encoding/json (-json +hand):\n%s", diff)
		}
	})
}

var benchSink []byte

func BenchmarkEncode(b *testing.B) {
	es := make([]Entry, 100)
	for i := range es {
		es[i] = sampleEntry()
		es[i].Seq = int64(i)
	}
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchSink = encodeEntries(es)
		}
		b.ReportMetric(float64(b.N*len(es))/b.Elapsed().Seconds(), "entries/s")
	})
	b.Run("encoding_json", func(b *testing.B) {
		type msg struct {
			Type    string  `json:"type"`
			Entries []Entry `json:"entries"`
		}
		b.ReportAllocs()
		for b.Loop() {
			benchSink, _ = json.Marshal(msg{"entries", es})
		}
		b.ReportMetric(float64(b.N*len(es))/b.Elapsed().Seconds(), "entries/s")
	})
}

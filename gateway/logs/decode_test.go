package logs

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// FuzzDecodeEntry: the hand decoder gives exactly what encoding/json gives,
// for the stored shape and for anything else.
func FuzzDecodeEntry(f *testing.F) {
	e := Entry{Seq: 7, Time: time.Date(2026, 9, 1, 12, 0, 0, 5, time.UTC), Observed: time.Date(2026, 9, 1, 12, 0, 1, 0, time.FixedZone("x", 3600)),
		Service: "api", Env: "prod", Level: "warn", Message: "hello \"world\" é\n", Attrs: map[string]string{"tenant": "acme", "k": ""},
		TraceID: "abc", Host: "h1", Redactions: map[string]int{"password": 2}, Truncated: true}
	f.Add(appendEntry(nil, &e))
	e2 := Entry{Seq: 1, Time: e.Time, Service: "a", Env: "b", Level: "info", Message: "plain"}
	f.Add(appendEntry(nil, &e2))
	f.Add([]byte(`{"SEQ":1,"message":null,"attributes":{"a":"b","a":"c"},"seq":-0}`))
	f.Add([]byte(`{"seq":1e3,"truncated":false,"redactions":{"x":99999999999999999999}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow Entry
		errFast := decodeEntry(b, &fast)
		errSlow := json.Unmarshal(b, &slow)
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("decodeEntry err %v, json err %v for %q", errFast, errSlow, b)
		}
		if errFast == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("decodeEntry %+v\njson        %+v\nfor %q", fast, slow, b)
		}
	})
}

func TestDecodeEntryRoundTrip(t *testing.T) {
	for _, e := range makeEntries("x", 3) {
		e.Seq, e.Attrs, e.Redactions = 42, map[string]string{"a": "1"}, map[string]int{"r": 1}
		var got Entry
		if err := decodeEntry(appendEntry(nil, &e), &got); err != nil || !reflect.DeepEqual(got, e) {
			t.Fatalf("round trip %+v -> %+v (%v)", e, got, err)
		}
	}
}

func BenchmarkDecodeEntry(b *testing.B) {
	e := tenantEntries("bench", LevelInfo)[0]
	e.Seq = 123456
	raw := appendEntry(nil, &e)
	b.Run("hand", func(b *testing.B) {
		for b.Loop() {
			var out Entry
			if err := decodeEntry(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			var out Entry
			if err := json.Unmarshal(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

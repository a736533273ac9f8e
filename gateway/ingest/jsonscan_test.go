package ingest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// flattenStd flattens an encoding/json decoded object the way the scanner
// does, arrays as canonical JSON.
func flattenStd(t *testing.T, prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		switch v := v.(type) {
		case map[string]any:
			if len(v) == 0 {
				out[key] = "{}"
				continue
			}
			flattenStd(t, key, v, out)
		case string:
			out[key] = v
		case json.Number:
			out[key] = v.String()
		case bool:
			out[key] = map[bool]string{true: "true", false: "false"}[v]
		case nil:
			out[key] = "null"
		case []any:
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			out[key] = string(b)
		}
	}
}

func canonicalArray(t *testing.T, raw string) string {
	d := json.NewDecoder(strings.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("scanner kept invalid array %q: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzScanObject checks the hand-written scanner against encoding/json: it
// accepts exactly the inputs encoding/json accepts as one object, and
// decodes the same flattened values.
func FuzzScanObject(f *testing.F) {
	for _, s := range []string{
		`{"message":"a"}`, `{"a":{"b":{"c":[1,{"d":2}]}},"e":-0.5e+3}`, `{"s":"\u00e9\ud83d\ude00\ud800x\"\\\/\b\f\n\r\t"}`,
		`{"a":1,"a":2}`, `{}`, ` {"x":true,"y":false,"z":null} `, "{\"bad\xff\":\"\xfe\"}", `{"n":01}`, `{"n":1.}`,
		`[1]`, `{"a":[}`, `{"a":"\ud83d"}`, `{"a":{}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var sc scanner
		ok := sc.scanObject(s)
		trimmed := bytes.TrimLeft([]byte(s), " \t\r\n")
		stdOK := json.Valid([]byte(s)) && len(trimmed) > 0 && trimmed[0] == '{'
		if ok != stdOK {
			t.Fatalf("scanObject(%q) = %v (%s), encoding/json valid object = %v", s, ok, sc.err, stdOK)
		}
		if !ok {
			return
		}
		mine := make(map[string]string)
		for _, f := range sc.fields {
			v := f.val
			if f.kind == kindArray {
				v = canonicalArray(t, v)
			}
			mine[f.key] = v
		}
		d := json.NewDecoder(strings.NewReader(s))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		std := make(map[string]string)
		flattenStd(t, "", m, std)
		if len(mine) != len(sc.fields) || len(std) != len(mine) {
			return // duplicate or colliding keys: last-wins differs by design
		}
		for k, v := range std {
			if mine[k] != v {
				t.Fatalf("scanObject(%q)[%q] = %q, encoding/json %q", s, k, mine[k], v)
			}
		}
	})
}

func FuzzDecodeJSONLines(f *testing.F) {
	f.Add([]byte("{\"message\":\"a\",\"time\":1700000000,\"level\":\"warn\"}\n{\"msg\":\"b\",\"a\":{\"b\":[1]}}"))
	f.Add([]byte(`[{"message":"a"},{"log":"b","ts":"2026-01-01T00:00:00Z"}]`))
	f.Add([]byte(`{"message":"a","time":"1772273472345678901"}`))
	f.Add([]byte(`{"message":"a","time":1e300}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		entries, err := DecodeJSONLines(body, testStream, Options{Now: testNow, MaxLineBytes: 1 << 12})
		if err != nil {
			if !IsClientError(err) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		for _, e := range entries {
			if e.Level == "" || e.Service != "checkout" {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

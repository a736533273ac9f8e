package ingest

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/loggate/loggate/gateway/logs"
)

var (
	testNow    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testStream = logs.Stream{Service: "checkout", Env: "prod"}
)

// entry builds the expected entry for testStream with defaults filled in.
func entry(msg string, mod func(e *logs.Entry)) logs.Entry {
	e := logs.Entry{Time: testNow, Observed: testNow, Service: "checkout", Env: "prod", Level: "info", Message: msg}
	if mod != nil {
		mod(&e)
	}
	return e
}

func TestDecodeJSONLines(t *testing.T) {
	ts := time.Date(2026, 2, 28, 10, 11, 12, 345678000, time.UTC)
	tests := []struct {
		name    string
		body    string
		mapping Mapping
		want    []logs.Entry
	}{
		{name: "minimal", body: `{"message":"hello"}`, want: []logs.Entry{entry("hello", nil)}},
		{name: "empty body", body: "", want: []logs.Entry{}},
		{name: "blank lines and CRLF", body: "\n{\"msg\":\"a\"}\r\n\r\n  \n{\"log\":\"b\"}\n", want: []logs.Entry{entry("a", nil), entry("b", nil)}},
		{name: "message precedence", body: `{"log":"l","msg":"m","message":"x"}`, want: []logs.Entry{entry("x", func(e *logs.Entry) {
			e.Attrs = map[string]string{"log": "l", "msg": "m"}
		})}},
		{name: "rfc3339nano", body: `{"message":"a","time":"2026-02-28T10:11:12.345678Z"}`, want: []logs.Entry{entry("a", func(e *logs.Entry) { e.Time = ts })}},
		{name: "rfc3339 offset", body: `{"message":"a","ts":"2026-02-28T11:11:12+01:00"}`, want: []logs.Entry{entry("a", func(e *logs.Entry) {
			e.Time = time.Date(2026, 2, 28, 10, 11, 12, 0, time.UTC)
		})}},
		{name: "unix seconds", body: `{"message":"a","timestamp":1772273472}`, want: []logs.Entry{entry("a", func(e *logs.Entry) { e.Time = time.Unix(1772273472, 0).UTC() })}},
		{name: "unix float seconds", body: `{"message":"a","time":1772273472.345678}`, want: []logs.Entry{entry("a", func(e *logs.Entry) { e.Time = time.Unix(1772273472, 345678000).UTC() })}},
		{name: "unix millis", body: `{"message":"a","time":1772273472345}`, want: []logs.Entry{entry("a", func(e *logs.Entry) { e.Time = time.UnixMilli(1772273472345).UTC() })}},
		{name: "unix nanos string", body: `{"message":"a","time":"1772273472345678901"}`, want: []logs.Entry{entry("a", func(e *logs.Entry) { e.Time = time.Unix(0, 1772273472345678901).UTC() })}},
		{name: "level synonyms", body: "{\"message\":\"1\",\"level\":\"WARNING\"}\n{\"message\":\"2\",\"severity\":\"err\"}\n{\"message\":\"3\",\"lvl\":\"critical\"}\n{\"message\":\"4\",\"level\":\"dbg\"}\n{\"message\":\"5\",\"level\":\"notice\"}\n{\"message\":\"6\",\"level\":\"panic\"}\n{\"message\":\"7\",\"level\":\"bogus\"}",
			want: []logs.Entry{
				entry("1", func(e *logs.Entry) { e.Level = "warn" }),
				entry("2", func(e *logs.Entry) { e.Level = "error" }),
				entry("3", func(e *logs.Entry) { e.Level = "fatal" }),
				entry("4", func(e *logs.Entry) { e.Level = "debug" }),
				entry("5", func(e *logs.Entry) { e.Level = "info" }),
				entry("6", func(e *logs.Entry) { e.Level = "fatal" }),
				entry("7", func(e *logs.Entry) { e.Attrs = map[string]string{"level": "bogus"} }),
			}},
		{name: "unparseable time kept as attribute", body: "{\"message\":\"a\",\"time\":\"yesterday\"}\n{\"message\":\"b\",\"ts\":-5}",
			want: []logs.Entry{
				entry("a", func(e *logs.Entry) { e.Attrs = map[string]string{"time": "yesterday"} }),
				entry("b", func(e *logs.Entry) { e.Attrs = map[string]string{"ts": "-5"} }),
			}},
		{name: "numeric levels", body: "{\"message\":\"a\",\"level\":50}\n{\"message\":\"b\",\"level\":4}\n{\"message\":\"c\",\"level\":30}",
			want: []logs.Entry{entry("a", func(e *logs.Entry) { e.Level = "error" }), entry("b", func(e *logs.Entry) { e.Level = "warn" }), entry("c", nil)}},
		{name: "nested attrs, arrays, scalars", body: `{"message":"a","http":{"status":500,"req":{"path":"/x"},"empty":{}},"tags":["a", 1],"ok":true,"none":null,"esc":"tab\there \u00e9\ud83d\ude00"}`,
			want: []logs.Entry{entry("a", func(e *logs.Entry) {
				e.Attrs = map[string]string{"http.status": "500", "http.req.path": "/x", "http.empty": "{}", "tags": `["a", 1]`, "ok": "true", "none": "null", "esc": "tab\there é😀"}
			})}},
		{name: "lifted", body: `{"message":"a","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","hostname":"node-1","k8s":{"pod":{"name":"web-1"}},"container":{"name":"app"},"pod":"other"}`,
			want: []logs.Entry{entry("a", func(e *logs.Entry) {
				e.TraceID, e.SpanID, e.Host, e.Pod, e.Container = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "node-1", "web-1", "app"
				e.Attrs = map[string]string{"pod": "other"}
			})}},
		{name: "array form", body: ` [ {"message":"a"}, {"msg":"b","level":"error"} ] `, want: []logs.Entry{entry("a", nil), entry("b", func(e *logs.Entry) { e.Level = "error" })}},
		{name: "empty array", body: `[]`, want: nil},
		{name: "custom mapping", body: `{"log":{"text":"hi"},"date":1772273472,"sev":"E","message":"other"}`, mapping: Mapping{MessageField: "log.text", TimeField: "date", LevelField: "sev"},
			want: []logs.Entry{entry("hi", func(e *logs.Entry) {
				e.Time, e.Level, e.Attrs = time.Unix(1772273472, 0).UTC(), "error", map[string]string{"message": "other"}
			})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeJSONLines([]byte(tt.body), testStream, Options{Now: testNow, Mapping: tt.mapping})
			if err != nil {
				t.Fatalf("DecodeJSONLines: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeJSONLinesErrors(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		stream   logs.Stream
		max      int
		wantLine int
		status   int // zero: 400
	}{
		{name: "bad second line", body: "{\"message\":\"a\"}\n{\"message\":\n{\"message\":\"c\"}", wantLine: 2},
		{name: "line numbers count blank lines", body: "{\"message\":\"a\"}\n\n\n{}", wantLine: 4},
		{name: "missing message", body: `{"msg2":"a"}`, wantLine: 1},
		{name: "null message", body: `{"message":null}`, wantLine: 1},
		{name: "not an object", body: `"just a string"`, wantLine: 1},
		{name: "trailing garbage", body: `{"message":"a"} x`, wantLine: 1},
		{name: "bad escape", body: `{"message":"\x"}`, wantLine: 1},
		{name: "control char", body: "{\"message\":\"a\x01\"}", wantLine: 1},
		{name: "array element bad", body: `[{"message":"a"},{"message":1},{}]`, wantLine: 3},
		{name: "array element not object", body: `[{"message":"a"}, 3]`, wantLine: 2},
		{name: "array unterminated", body: `[{"message":"a"}`, wantLine: 1},
		{name: "line too long", body: "{\"message\":\"a\"}\n{\"message\":\"" + string(make([]byte, 100)) + "\"}", max: 50, wantLine: 2, status: 413},
		{name: "no stream", body: `{"message":"a"}`, stream: logs.Stream{Service: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream := tt.stream
			if stream == (logs.Stream{}) {
				stream = testStream
			}
			_, err := DecodeJSONLines([]byte(tt.body), stream, Options{Now: testNow, MaxLineBytes: tt.max})
			if err == nil {
				t.Fatal("DecodeJSONLines succeeded, want error")
			}
			want := 400
			if tt.status != 0 {
				want = tt.status
			}
			if HTTPStatus(err) != want || (want == 400 && !IsClientError(err)) {
				t.Errorf("error %v: status %d (client error %v), want %d", err, HTTPStatus(err), IsClientError(err), want)
			}
			if tt.wantLine == 0 {
				var se *StreamError
				if !errors.As(err, &se) {
					t.Errorf("error %v, want *StreamError", err)
				}
				return
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v, want *LineError", err, err)
			}
			if le.Line != tt.wantLine {
				t.Errorf("Line = %d (%v), want %d", le.Line, err, tt.wantLine)
			}
		})
	}
}

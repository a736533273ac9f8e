package ingest

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/google/go-cmp/cmp"
	"github.com/loggate/loggate/gateway/logs"
	"google.golang.org/protobuf/encoding/protowire"
)

var update = flag.Bool("update", false, "rewrite binary fixtures under testdata")

// The expected entries of both golden push requests.
func lokiWant() []logs.Entry {
	return []logs.Entry{
		{Time: time.Unix(0, 1772273472345678901).UTC(), Observed: testNow, Service: "checkout", Env: "prod", Level: "warn",
			Message: "payment slow", Attrs: map[string]string{"namespace": "shop"}, Pod: "checkout-5d9f-abc"},
		{Time: time.Unix(0, 1772273473000000000).UTC(), Observed: testNow, Service: "checkout", Env: "prod", Level: "error",
			Message: "payment failed", Attrs: map[string]string{"namespace": "shop", "order": "81231"}, Pod: "checkout-5d9f-abc",
			TraceID: "5b8efff798038103d269b633813fc60c"},
		{Time: time.Unix(0, 1772273474000000000).UTC(), Observed: testNow, Service: "cart", Env: "staging", Level: "info",
			Message: "cart \"saved\"\nsecond line"},
	}
}

func TestDecodeLokiJSON(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "loki_push.json"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeLokiPush(body, "application/json", Options{Now: testNow})
	if err != nil {
		t.Fatalf("DecodeLokiPush: %v", err)
	}
	if diff := cmp.Diff(lokiWant(), got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

// Tiny logproto encoder for the fixture (the same messages as loki_push.json).
type pbEntry struct {
	sec, nsec int64
	line      string
	meta      [][2]string
}

func encodePush(streams map[string][]pbEntry, order []string) []byte {
	var req []byte
	for _, labels := range order {
		var st []byte
		st = protowire.AppendTag(st, 1, protowire.BytesType)
		st = protowire.AppendString(st, labels)
		for _, e := range streams[labels] {
			var ts []byte
			ts = protowire.AppendTag(ts, 1, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(e.sec))
			ts = protowire.AppendTag(ts, 2, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(e.nsec))
			var ent []byte
			ent = protowire.AppendTag(ent, 1, protowire.BytesType)
			ent = protowire.AppendBytes(ent, ts)
			ent = protowire.AppendTag(ent, 2, protowire.BytesType)
			ent = protowire.AppendString(ent, e.line)
			for _, kv := range e.meta {
				var lp []byte
				lp = protowire.AppendTag(lp, 1, protowire.BytesType)
				lp = protowire.AppendString(lp, kv[0])
				lp = protowire.AppendTag(lp, 2, protowire.BytesType)
				lp = protowire.AppendString(lp, kv[1])
				ent = protowire.AppendTag(ent, 3, protowire.BytesType)
				ent = protowire.AppendBytes(ent, lp)
			}
			st = protowire.AppendTag(st, 2, protowire.BytesType)
			st = protowire.AppendBytes(st, ent)
		}
		st = protowire.AppendTag(st, 3, protowire.VarintType) // hash, ignored
		st = protowire.AppendVarint(st, 12345)
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, st)
	}
	return snappy.Encode(nil, req)
}

func goldenPush() []byte {
	s1 := `{env="prod", level="warn", namespace="shop", pod="checkout-5d9f-abc", service_name="checkout"}`
	s2 := `{app="cart",environment="staging",}`
	return encodePush(map[string][]pbEntry{
		s1: {
			{sec: 1772273472, nsec: 345678901, line: "payment slow"},
			{sec: 1772273473, line: "payment failed", meta: [][2]string{{"trace_id", "5b8efff798038103d269b633813fc60c"}, {"detected_level", "error"}, {"order", "81231"}}},
		},
		s2: {{sec: 1772273474, line: "cart \"saved\"\nsecond line"}},
	}, []string{s1, s2})
}

func TestDecodeLokiProtobuf(t *testing.T) {
	path := filepath.Join("testdata", "loki_push.pb.snappy")
	body := goldenPush()
	if *update {
		if err := os.WriteFile(path, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fixture, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fixture, body) {
		t.Errorf("%s differs from the encoder's output; run with -update and review", path)
	}
	got, err := DecodeLokiPush(fixture, "application/x-protobuf", Options{Now: testNow})
	if err != nil {
		t.Fatalf("DecodeLokiPush: %v", err)
	}
	if diff := cmp.Diff(lokiWant(), got); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
}

func TestDecodeLokiErrors(t *testing.T) {
	big := snappy.Encode(nil, make([]byte, 4096))
	tests := []struct {
		name, body, contentType string
		maxBody                 int64
		wantStatus              int
		wantStream              bool
	}{
		{name: "no env", body: `{"streams":[{"stream":{"app":"x"},"values":[["1","a"]]}]}`, contentType: "application/json", wantStatus: 400, wantStream: true},
		{name: "bad timestamp", body: `{"streams":[{"stream":{"app":"x","env":"p"},"values":[["yesterday","a"]]}]}`, contentType: "application/json", wantStatus: 400},
		{name: "short value", body: `{"streams":[{"stream":{"app":"x","env":"p"},"values":[["1"]]}]}`, contentType: "application/json", wantStatus: 400},
		{name: "metadata not strings", body: `{"streams":[{"stream":{"app":"x","env":"p"},"values":[["1","a",{"n":1}]]}]}`, contentType: "application/json", wantStatus: 400},
		{name: "not json", body: `{"streams":`, contentType: "application/json", wantStatus: 400},
		{name: "not snappy", body: "\xff\xff\xff\xff\xff", contentType: "application/x-protobuf", wantStatus: 400},
		{name: "snappy not protobuf", body: string(snappy.Encode(nil, []byte{0x0a, 0xff})), contentType: "application/x-protobuf", wantStatus: 400},
		{name: "bad labels", body: string(encodePush(map[string][]pbEntry{`{app="x"`: {{line: "a"}}}, []string{`{app="x"`})), contentType: "application/x-protobuf", wantStatus: 400},
		{name: "proto no stream", body: string(encodePush(map[string][]pbEntry{`{app="x"}`: {{line: "a"}}}, []string{`{app="x"}`})), contentType: "application/x-protobuf", wantStatus: 400, wantStream: true},
		{name: "snappy too large", body: string(big), contentType: "application/x-protobuf", maxBody: 1024, wantStatus: 413},
		{name: "unsupported", body: "x", contentType: "text/plain", wantStatus: 415},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeLokiPush([]byte(tt.body), tt.contentType, Options{Now: testNow, MaxBodyBytes: tt.maxBody})
			if err == nil {
				t.Fatal("DecodeLokiPush succeeded, want error")
			}
			if got := HTTPStatus(err); got != tt.wantStatus {
				t.Errorf("HTTPStatus(%v) = %d, want %d", err, got, tt.wantStatus)
			}
			var se *StreamError
			if errors.As(err, &se) != tt.wantStream {
				t.Errorf("error %v: StreamError = %v, want %v", err, !tt.wantStream, tt.wantStream)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{in: `{}`, want: map[string]string{}},
		{in: ` { app = "x" , env="prod" } `, want: map[string]string{"app": "x", "env": "prod"}},
		{in: `{a="q\"uote\\ \n\t\u00e9 \x41"}`, want: map[string]string{"a": "q\"uote\\ \n\té A"}},
		{in: `{"service.name"="x", _b1="y",}`, want: map[string]string{"service.name": "x", "_b1": "y"}},
		{in: "{a=`raw\\n`}", want: map[string]string{"a": `raw\n`}},
		{in: `{a="x", a="y"}`, wantErr: true},
		{in: `{1a="x"}`, wantErr: true},
		{in: `{a="x"`, wantErr: true},
		{in: `{a="x}`, wantErr: true},
		{in: `{a=x}`, wantErr: true},
		{in: `{a="\q"}`, wantErr: true},
		{in: `{a="x"} y`, wantErr: true},
		{in: `a="x"`, wantErr: true},
		{in: `{""="x"}`, wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseLabels(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseLabels(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err != nil {
			if !IsClientError(err) {
				t.Errorf("ParseLabels(%q) error %v is not a client error", tt.in, err)
			}
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseLabels(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{`{}`, `{app="x", env="prod"}`, `{a="\u00e9\"",}`, `{"x.y"="z"}`, "{a=`b`}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseLabels(s)
		if err != nil {
			if !IsClientError(err) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		if m == nil {
			t.Fatal("nil map without error")
		}
	})
}

func FuzzDecodeLokiPush(f *testing.F) {
	golden, err := os.ReadFile(filepath.Join("testdata", "loki_push.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(golden, true)
	f.Add(goldenPush(), false)
	f.Fuzz(func(t *testing.T, body []byte, isJSON bool) {
		ct := ContentTypeProtobuf
		if isJSON {
			ct = ContentTypeJSON
		}
		entries, err := DecodeLokiPush(body, ct, Options{Now: testNow, MaxBodyBytes: 1 << 20})
		if err != nil {
			if !IsClientError(err) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v is not a client error", err)
			}
			return
		}
		for _, e := range entries {
			if e.Service == "" || e.Env == "" || logs.LevelRank(e.Level) == 0 {
				t.Fatalf("bad entry %+v", e)
			}
		}
	})
}

func TestDecodeLokiUnknownLevelKept(t *testing.T) {
	body := `{"streams":[{"stream":{"app":"x","env":"p","level":"chatty"},"values":[["1","a"],["2","b",{"severity":"CRIT"}],["3","c",{"level":"loud"}]]}]}`
	got, err := DecodeLokiPush([]byte(body), "application/json", Options{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	type lv struct {
		Level string
		Attrs map[string]string
	}
	var gotLv []lv
	for _, e := range got {
		gotLv = append(gotLv, lv{e.Level, e.Attrs})
	}
	want := []lv{
		{"info", map[string]string{"level": "chatty"}},
		{"fatal", map[string]string{"level": "chatty"}},
		{"info", map[string]string{"level": "loud"}},
	}
	if diff := cmp.Diff(want, gotLv); diff != "" {
		t.Errorf("levels (-want +got):\n%s", diff)
	}
}

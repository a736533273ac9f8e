package ingest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/ingest"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/redact"
)

// benchBody returns n NDJSON lines of about 250 bytes; every 100th carries a
// secret (a GitHub token in the message, or a password attribute).
func benchBody(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		msg := fmt.Sprintf("GET /api/v1/orders/%d completed in %dms", 81231+i, 3+i%40)
		extra := ""
		switch {
		case i%200 == 0:
			msg = "auth retry token=ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d for user"
		case i%100 == 0:
			extra = `,"db_password":"CorrectHorseBatteryStaple"`
		}
		fmt.Fprintf(&b, `{"time":"2026-03-01T12:%02d:%02d.%06dZ","level":"info","msg":%q,"http":{"method":"GET","status":%d,"duration_ms":%d.%d},"user_id":"u-%d","region":"eu-west-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e%04d"%s}`+"\n",
			i/60%60, i%60, i*37%1000000, msg, 200+i%3, i%90, i%10, 4000+i%977, i%10000, extra)
	}
	return b.Bytes()
}

const benchLines = 1000

// BenchmarkIngestNDJSONRedacted is the ingest hot path: decode an NDJSON
// batch and redact every entry. Goal: at least 250k lines/s per core and at
// least half the speed of BenchmarkDecodeStdlibMaps.
func BenchmarkIngestNDJSONRedacted(b *testing.B) {
	body := benchBody(benchLines)
	r, err := redact.New(redact.Config{})
	if err != nil {
		b.Fatal(err)
	}
	stream := logs.Stream{Service: "checkout", Env: "prod"}
	opts := ingest.Options{Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	masked := 0
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		entries, err := ingest.DecodeJSONLines(body, stream, opts)
		if err != nil {
			b.Fatal(err)
		}
		for i := range entries {
			r.Entry(&entries[i])
			if entries[i].Redactions != nil {
				masked++
			}
		}
	}
	if masked != b.N*benchLines/100 {
		b.Fatalf("masked %d entries, want %d", masked, b.N*benchLines/100)
	}
	b.ReportMetric(float64(b.N*benchLines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(0, "ns/op") // per batch; see lines/s
}

// BenchmarkDecodeStdlibMaps is the baseline: plain encoding/json decoding of
// the same lines into map[string]any, no normalisation, no redaction.
func BenchmarkDecodeStdlibMaps(b *testing.B) {
	body := benchBody(benchLines)
	lines := bytes.Split(bytes.TrimSpace(body), []byte{'\n'})
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			var m map[string]any
			if err := json.Unmarshal(l, &m); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*benchLines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkDecodeJSONLines is the decode share of the hot path, without
// redaction.
func BenchmarkDecodeJSONLines(b *testing.B) {
	body := benchBody(benchLines)
	stream := logs.Stream{Service: "checkout", Env: "prod"}
	opts := ingest.Options{Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ingest.DecodeJSONLines(body, stream, opts); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchLines)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(0, "ns/op")
}

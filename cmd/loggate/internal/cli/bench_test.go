package cli

import (
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/api"
)

// BenchmarkFormatEntry is the per-line cost of the text tail.
func BenchmarkFormatEntry(b *testing.B) {
	e := api.Entry{Seq: 42, Time: time.Now(), Level: "error", Message: "POST /api/checkout 502 order=ord_123456: upstream payments timed out after 3000ms",
		Attrs: map[string]string{"http.status": "502", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "duration_ms": "3001"}, Pod: "checkout-prod-7d9f8-ab"}
	b.ReportAllocs()
	for b.Loop() {
		_ = formatEntry(e, true)
	}
}

// BenchmarkToNDJSON is the per-line cost of ship for JSON and plain lines.
func BenchmarkToNDJSON(b *testing.B) {
	for _, bc := range []struct{ name, line string }{
		{"json", `{"time":"2025-01-01T00:00:00Z","level":"info","message":"POST /api/checkout 200 123ms order=ord_123456","pod":"checkout-1"}` + "\n"},
		{"plain", "2025-01-01T00:00:00Z INFO POST /api/checkout 200 123ms order=ord_123456 user=u1234\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			line := []byte(bc.line)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			for b.Loop() {
				_ = toNDJSON(line)
			}
		})
	}
}

package alert_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/ingest"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/redact"
)

// benchBody is n NDJSON lines of about 250 bytes, like the ingest
// benchmark's; every 100th carries a secret.
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
		case i%50 == 0:
			msg = fmt.Sprintf("upstream-%d timed out after 30s", i%7)
		}
		fmt.Fprintf(&b, `{"time":"2026-03-01T12:%02d:%02d.%06dZ","level":"info","msg":%q,"http":{"method":"GET","status":%d,"duration_ms":%d.%d},"user_id":"u-%d","region":"eu-west-1","trace_id":"4bf92f3577b34da6a3ce929d0e0e%04d"%s}`+"\n",
			i/60%60, i%60, i*37%1000000, msg, 200+i%3, i%90, i%10, 4000+i%977, i%10000, extra)
	}
	return b.Bytes()
}

// hundredRules is a plausible rules file of 100 log rules on the
// benchmark's stream: 70 on message patterns (a few of which match some
// lines), 20 on a minimum level, 10 on attributes.
func hundredRules() string {
	var b strings.Builder
	for i := range 70 {
		fmt.Fprintf(&b, "- {name: msg-%d, service: checkout, env: 'p*', message: 'upstream-%d (timed out|refused)', threshold: 50, window: 5m, group_by: [region]}\n", i, i)
	}
	for i := range 20 {
		fmt.Fprintf(&b, "- {name: level-%d, service: checkout, env: prod, level: error, message: 'E%03d', threshold: 10, window: 1m}\n", i, i)
	}
	for i := range 10 {
		fmt.Fprintf(&b, "- {name: attr-%d, service: checkout, env: prod, attributes: {http.status: '50%d'}, threshold: 100, window: 1m}\n", i, i)
	}
	return b.String()
}

// BenchmarkIngestWithRules is the NDJSON ingest hot path (decode, redact)
// with no alert rules and with 100 log rules, in the same run. Goal: with
// 100 rules at least 80 % of the rate without.
func BenchmarkIngestWithRules(b *testing.B) {
	body := benchBody(1000)
	red, err := redact.New(redact.Config{})
	if err != nil {
		b.Fatal(err)
	}
	set, err := alert.Parse("bench.yaml", []byte(hundredRules()))
	if err != nil {
		b.Fatal(err)
	}
	stream := logs.Stream{Service: "checkout", Env: "prod"}
	opts := ingest.Options{Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			e := alert.NewEngine(alert.EngineConfig{})
			if n > 0 {
				e.SetRules(set)
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				entries, err := ingest.DecodeJSONLines(body, stream, opts)
				if err != nil {
					b.Fatal(err)
				}
				for i := range entries {
					red.Entry(&entries[i])
				}
				e.ObserveEntries(entries)
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "lines/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkObserve100Rules is the evaluator alone: 1000 redacted entries
// against 100 rules.
func BenchmarkObserve100Rules(b *testing.B) {
	entries, err := ingest.DecodeJSONLines(benchBody(1000), logs.Stream{Service: "checkout", Env: "prod"},
		ingest.Options{Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		b.Fatal(err)
	}
	set, err := alert.Parse("bench.yaml", []byte(hundredRules()))
	if err != nil {
		b.Fatal(err)
	}
	e := alert.NewEngine(alert.EngineConfig{})
	e.SetRules(set)
	b.ReportAllocs()
	for b.Loop() {
		e.ObserveEntries(entries)
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkIngestRulesInterleaved runs the same batch through the ingest
// path with 0 and with 100 rules alternately, timing each, so that a busy
// machine's drift hits both alike; it reports both rates and their ratio
// (goal ≥ 0.8).
func BenchmarkIngestRulesInterleaved(b *testing.B) {
	body := benchBody(1000)
	red, err := redact.New(redact.Config{})
	if err != nil {
		b.Fatal(err)
	}
	set, err := alert.Parse("bench.yaml", []byte(hundredRules()))
	if err != nil {
		b.Fatal(err)
	}
	stream := logs.Stream{Service: "checkout", Env: "prod"}
	opts := ingest.Options{Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	none, hundred := alert.NewEngine(alert.EngineConfig{}), alert.NewEngine(alert.EngineConfig{})
	hundred.SetRules(set)
	var took [2]time.Duration
	for b.Loop() {
		for k, e := range []*alert.Engine{none, hundred} {
			start := time.Now()
			entries, err := ingest.DecodeJSONLines(body, stream, opts)
			if err != nil {
				b.Fatal(err)
			}
			for i := range entries {
				red.Entry(&entries[i])
			}
			e.ObserveEntries(entries)
			took[k] += time.Since(start)
		}
	}
	r0 := float64(b.N*1000) / took[0].Seconds()
	r100 := float64(b.N*1000) / took[1].Seconds()
	b.ReportMetric(r0, "lines/s-0rules")
	b.ReportMetric(r100, "lines/s-100rules")
	b.ReportMetric(r100/r0, "ratio")
	b.ReportMetric(0, "ns/op")
}

package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/cluster/redistest"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/logs/seal"
)

// BenchmarkFeedSealing is BenchmarkBacklogSealing (gateway/logs) for the
// Redis feed, against a real redis-server: ingest is Feed.Publish of
// 64-entry batches (one script round trip each), backfill is Feed.Range of
// 1000 stored entries; clear and sealed in the same run. Each run gets a
// fresh redis-server, so that a later run does not meet a longer
// append-only file (and its rewrites) than an earlier one.
func BenchmarkFeedSealing(b *testing.B) {
	for _, sealed := range []bool{false, true} {
		name := "clear"
		if sealed {
			name = "sealed"
		}
		b.Run("ingest/"+name, func(b *testing.B) { benchFeed(b, newEnv(b), sealed, false) })
		b.Run("backfill/"+name, func(b *testing.B) { benchFeed(b, newEnv(b), sealed, true) })
	}
}

// BenchmarkFeedSealingPaired is the ingest half of BenchmarkFeedSealing
// with clear and sealed batches alternating in one run, into two feeds
// on one redis-server: each b.N is one clear and one sealed Publish of 64
// entries, timed apart, so that both meet the same machine load, the same
// server and the same append-only file. It reports both rates and
// sealed/clear (1 = no cost).
func BenchmarkFeedSealingPaired(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	clear, s := benchFeedSetup(b, e, false)
	sealed, _ := benchFeedSetup(b, e, true)
	tmpl := benchBatch(s, 64)
	buf := make([]logs.Entry, len(tmpl))
	var took [2]time.Duration
	for i := -1; i < b.N; i++ {
		for j, f := range []*Feed{clear, sealed} {
			copy(buf, tmpl)
			start := time.Now()
			if _, err := f.Publish(ctx, buf); err != nil {
				b.Fatal(err)
			}
			if i >= 0 { // i == -1 loads the scripts
				took[j] += time.Since(start)
			}
		}
	}
	n := float64(b.N * len(tmpl))
	b.ReportMetric(n/took[0].Seconds(), "clear-entries/s")
	b.ReportMetric(n/took[1].Seconds(), "sealed-entries/s")
	b.ReportMetric(took[0].Seconds()/took[1].Seconds(), "sealed/clear")
}

func benchFeedSetup(b *testing.B, e *env, sealed bool) (*Feed, logs.Stream) {
	cfg := FeedConfig{Client: e.client(b), Prefix: redistest.Prefix(b), Block: 200 * time.Millisecond,
		Retention: func(string) logs.Retention { return logs.Retention{MaxEntries: 1 << 20} }}
	if sealed {
		cfg.Prefix += "sealed:"
		ring, err := seal.Parse(seal.Generate())
		if err != nil {
			b.Fatal(err)
		}
		cfg.Keys = ring
	}
	f, err := NewFeed(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return f, logs.Stream{Service: "api", Env: "prod"}
}

func benchBatch(s logs.Stream, n int) []logs.Entry {
	es := entries(s, "GET /api/v1/orders/12345/items?expand=price,stock 200 in 12ms user=42 region=eu-west-1 trace=4bf92f3577b34da6a3ce929d0e0e4736", n)
	for i := range es {
		es[i].Pod = "api-7f9c-xk2"
		es[i].Observed = es[i].Time
	}
	return es
}

func benchFeed(b *testing.B, e *env, sealed, backfill bool) {
	f, s := benchFeedSetup(b, e, sealed)
	cfg := FeedConfig{Client: f.c}
	ctx := context.Background()
	batch := func(n int) []logs.Entry { return benchBatch(s, n) }
	if !backfill {
		tmpl := batch(64)
		buf := make([]logs.Entry, len(tmpl))
		copy(buf, tmpl)
		if _, err := f.Publish(ctx, buf); err != nil { // loads the script
			b.Fatal(err)
		}
		cfg.Client.ConfigResetStat(ctx)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			copy(buf, tmpl)
			if _, err := f.Publish(ctx, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N*len(tmpl))/b.Elapsed().Seconds(), "entries/s")
		// Redis's own time per script call separates its cost from the
		// round trip and from sealing.
		if us, ok := scriptMicros(ctx, cfg.Client); ok {
			b.ReportMetric(us, "redis-µs/batch")
		}
		return
	}
	const stored, page = 20000, 1000
	for range stored / 500 {
		if _, err := f.Publish(ctx, batch(500)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	read := 0
	for i := 0; i < b.N; i++ {
		after := int64(i*page) % (stored - page)
		es, err := f.Range(ctx, s, after, time.Time{}, page)
		if err != nil || len(es) != page {
			b.Fatalf("Range after %d: %d entries, %v", after, len(es), err)
		}
		read += len(es)
	}
	b.StopTimer()
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "entries/s")
}

// scriptMicros reads usec_per_call of EVALSHA from INFO commandstats.
func scriptMicros(ctx context.Context, c *redis.Client) (float64, bool) {
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_evalsha:")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
				f, err := strconv.ParseFloat(v, 64)
				return f, err == nil
			}
		}
	}
	return 0, false
}

package logs

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkPublishFanout publishes batches of 64 entries to N viewers whose
// filters fall into 1 or 4 distinct keys, and reports the publish rate and
// the publish-to-receive latency seen by the viewers' readers.
//
// mode=flood publishes as fast as it can, so latency includes queueing (and
// viewers may drop); mode=lockstep waits until every viewer has the batch
// before publishing the next, which measures the fan-out path alone.
func BenchmarkPublishFanout(b *testing.B) {
	type bench struct {
		mode             string
		viewers, filters int
		chained          bool
	}
	var cases []bench
	for _, mode := range []string{"flood", "lockstep"} {
		for _, viewers := range []int{10, 100} {
			for _, chained := range []bool{false, true} {
				cases = append(cases, bench{mode, viewers, 1, chained})
			}
		}
		cases = append(cases, bench{mode, 100, 4, true})
	}
	for _, c := range cases {
		digest := "concat"
		if c.chained {
			digest = "chained"
		}
		name := fmt.Sprintf("mode=%s/viewers=%d/filters=%d/digest=%s", c.mode, c.viewers, c.filters, digest)
		b.Run(name, func(b *testing.B) {
			benchFanout(b, HubConfig{QueueSize: 256, MaxViewerRate: 1 << 30, ChainedDigest: c.chained},
				c.viewers, c.filters, 64, c.mode == "lockstep")
		})
	}
	// With the SQLite backlog: the writer goroutine must not slow fan-out.
	b.Run("mode=flood/viewers=10/filters=1/digest=chained/backlog=sqlite", func(b *testing.B) {
		bl, err := OpenSQLiteBacklog(context.Background(), filepath.Join(b.TempDir(), "b.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer bl.Close()
		benchFanout(b, HubConfig{QueueSize: 256, MaxViewerRate: 1 << 30, ChainedDigest: true, Backlog: bl},
			10, 1, 64, false)
	})
}

// BenchmarkSQLiteAppend measures the backlog's write rate in batches of 256.
func BenchmarkSQLiteAppend(b *testing.B) {
	bl, err := OpenSQLiteBacklog(context.Background(), filepath.Join(b.TempDir(), "b.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bl.Close()
	es := makeEntries("GET /api/v1/orders/12345 200 in 12ms user=42 region=eu", 256)
	seq := int64(0)
	for b.Loop() {
		for i := range es {
			seq++
			es[i].Seq = seq
		}
		if err := bl.Append(context.Background(), es); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "entries/s")
}

func benchFanout(b *testing.B, cfg HubConfig, viewers, filters, batch int, lockstep bool) {
	h := newTestHub(b, cfg)
	levels := []string{LevelTrace, LevelDebug, LevelInfo, LevelWarn}
	tmpl := makeEntries("GET /api/v1/orders/12345 200 in 12ms user=42 region=eu", batch)
	for i := range tmpl {
		tmpl[i].Attrs = map[string]string{"http.status": "200", "region": "eu"}
		tmpl[i].Pod = "api-7f9c-xk2"
		tmpl[i].Level = LevelWarn // every filter below matches
	}
	last := int64(b.N * batch)
	pubTimes := make([]time.Time, b.N)
	lat := make([][]time.Duration, viewers)
	var wg sync.WaitGroup
	got := make(chan struct{}, viewers)
	vs := make([]*Viewer, viewers)
	for i := range viewers {
		// filters > 1: viewers spread over distinct keys that all match.
		f := Filter{MinLevel: levels[i%filters]}
		v := subscribe(b, h, SubscribeOptions{Filter: f})
		vs[i] = v
		lat[i] = make([]time.Duration, 0, b.N)
		wg.Go(func() {
			for m := range v.Messages() {
				if m.Type == TypeEntries {
					lat[i] = append(lat[i], time.Since(pubTimes[(m.FirstSeq-1)/int64(batch)]))
					if lockstep {
						got <- struct{}{}
					}
				}
				if m.LastSeq == last {
					return
				}
			}
		})
	}
	buf := make([]Entry, batch)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf, tmpl)
		pubTimes[i] = time.Now()
		if _, err := h.Publish(ctx, buf); err != nil {
			b.Fatal(err)
		}
		if lockstep {
			for range viewers {
				<-got
			}
		}
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	var dropped, delivered int64
	for _, l := range lat {
		all = append(all, l...)
	}
	for _, v := range vs {
		st := v.Stats()
		dropped += st.Dropped
		delivered += st.Entries
	}
	slices.Sort(all)
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(last)/secs, "entries/s")
	b.ReportMetric(float64(delivered)/secs, "deliveries/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(dropped)/float64(last*int64(viewers)), "dropped/entry")
}

// BenchmarkIdleViewerMemory subscribes 10k viewers that receive nothing and
// reports the heap and stack they hold, per viewer.
func BenchmarkIdleViewerMemory(b *testing.B) {
	for b.Loop() {
		b.ReportMetric(idleViewerBytes(b, 10000), "bytes/viewer")
	}
}

func idleViewerBytes(tb testing.TB, n int) float64 {
	h, err := NewHub(HubConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	publish(tb, h, makeEntries("x", 1)) // the stream exists before measuring
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	vs := make([]*Viewer, n)
	for i := range vs {
		v, err := h.Subscribe(testStream, SubscribeOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		vs[i] = v
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := (after.HeapAlloc + after.StackInuse) - (before.HeapAlloc + before.StackInuse)
	runtime.KeepAlive(vs)
	return float64(used) / float64(n)
}

func TestIdleViewerMemory(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("memory is not representative under -race or -short")
	}
	const limit = 32 << 10
	if got := idleViewerBytes(t, 2000); got > limit {
		t.Errorf("idle viewer holds %.0f bytes, want <= %d", got, limit)
	}
}

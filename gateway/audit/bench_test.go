package audit

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkAppendConcurrent measures durable appends (WAL, synchronous=FULL)
// from many goroutines sharing transactions through group commit.
// par is b.SetParallelism: par x GOMAXPROCS goroutines append in a loop.
func BenchmarkAppendConcurrent(b *testing.B) {
	for _, par := range []int{16, 64} {
		b.Run(fmt.Sprintf("par=%d", par), func(b *testing.B) {
			s, err := Open(context.Background(), Config{Dir: b.TempDir(), CheckpointInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ev := testEvent(1)
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.Append(context.Background(), ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(st.Appends)/float64(max(st.Commits, 1)), "events/commit")
		})
	}
}

// BenchmarkAppendSerial is one caller: one transaction and fsync per event.
func BenchmarkAppendSerial(b *testing.B) {
	s, err := Open(context.Background(), Config{Dir: b.TempDir(), CheckpointInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ev := testEvent(1)
	for b.Loop() {
		if _, err := s.Append(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBareWriteFsync is the disk's floor for comparison: append ~300
// bytes and fsync, once per iteration, in the same kind of directory.
func BenchmarkBareWriteFsync(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "bare"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	line := make([]byte, 300)
	for i := range line {
		line[i] = 'x'
	}
	line[299] = '\n'
	for b.Loop() {
		if _, err := f.Write(line); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}

// bulkLoad appends n events through the real commit path in large batches.
// The writer goroutine must be idle (no Append in flight, long checkpoint
// interval): it is a benchmark helper, not a store feature.
func bulkLoad(tb testing.TB, s *Store, n int) {
	tb.Helper()
	const chunk = 2000
	batch := make([]*appendReq, 0, chunk)
	for i := 0; i < n; i++ {
		ev := testEvent(i)
		ev.ID = NewEventID()
		ev.Schema = SchemaVersion
		ev.Time = testTime.Add(time.Duration(i) * time.Millisecond)
		tail, err := EncodeTail(&ev)
		if err != nil {
			tb.Fatal(err)
		}
		batch = append(batch, &appendReq{ev: ev, tail: tail})
		if len(batch) == chunk || i == n-1 {
			if _, err := s.commit(context.Background(), batch); err != nil {
				tb.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkVerify1M builds a store of one million events, then times Verify
// over it (every record hashed twice from its stored bytes, the tree and
// every stored tree hash recomputed, every checkpoint checked).
func BenchmarkVerify1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a million events")
	}
	benchVerify(b, 1_000_000)
}

// BenchmarkVerify100k is the same at a tenth of the size.
func BenchmarkVerify100k(b *testing.B) { benchVerify(b, 100_000) }

func benchVerify(b *testing.B, n int) {
	dir := b.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir, CheckpointInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	bulkLoad(b, s, n)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("built %d events in %v", n, time.Since(start))
	b.ResetTimer()
	for b.Loop() {
		rep, err := Verify(context.Background(), dir, nil)
		if err != nil || rep.Events != int64(n) {
			b.Fatalf("Verify: %v (%d events)", err, rep.Events)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

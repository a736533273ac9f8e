package audit

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTrail1M builds one store of a million events once, then times
// on it: verify (every record hashed from its stored bytes, every search
// column recomputed from the record, the tree and every stored tree hash
// recomputed, every checkpoint checked) and consistency proofs from a
// random older size to the signed head (what GET /api/v1/audit/consistency
// serves, before JSON).
func BenchmarkTrail1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a million events")
	}
	const n = 1_000_000
	// LOGGATE_TRAIL1M_DIR keeps the built trail between runs (building it
	// takes a minute or two): an empty or missing directory is built once.
	dir := os.Getenv("LOGGATE_TRAIL1M_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	if _, err := os.Stat(filepath.Join(dir, "built")); err != nil {
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
		if err := os.WriteFile(filepath.Join(dir, "built"), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("verify", func(b *testing.B) {
		cpu0 := cpuTime(b)
		for b.Loop() {
			rep, err := Verify(context.Background(), dir, nil)
			if err != nil || rep.Events != n {
				b.Fatalf("Verify: %v (%d events)", err, rep.Events)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
		// CPU time is what a shared machine's load cannot inflate much:
		// with two cores free, wall time is about half of it.
		b.ReportMetric((cpuTime(b)-cpu0).Seconds()/float64(b.N), "cpu-s/verify")
	})
	b.Run("consistency", func(b *testing.B) {
		s, err := Open(context.Background(), Config{Dir: dir, CheckpointInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		cp, err := s.LatestCheckpoint(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		// 100 proofs per iteration, so -benchtime 3x (for verify) still
		// measures many.
		const per = 100
		r := rand.New(rand.NewPCG(1, 2))
		cpu0 := cpuTime(b)
		for b.Loop() {
			for range per {
				from := 1 + r.Int64N(cp.Size)
				p, err := s.Consistency(context.Background(), from, cp.Size)
				if err != nil || p.To != cp.Size {
					b.Fatalf("Consistency(%d, %d): %v", from, cp.Size, err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*per)/1000, "ms/proof")
		b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N*per)/1000, "cpu-ms/proof")
	})
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package audit

import (
	"context"
	"math/rand/v2"
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

	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			rep, err := Verify(context.Background(), dir, nil)
			if err != nil || rep.Events != n {
				b.Fatalf("Verify: %v (%d events)", err, rep.Events)
			}
		}
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
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
	})
}

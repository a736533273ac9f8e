package logs

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/logs/seal"
)

// BenchmarkBacklogSealing measures what sealing the backlog costs, clear
// and sealed side by side in one run so that both see the same machine:
//
//   - ingest: Hub.Publish of 64-entry batches (~250-byte lines with attrs)
//     into a SQLite backlog, timed until the backlog writer has stored
//     everything (the durable ingest rate, not just the fan-out);
//   - backfill: Range of 1000 stored entries straight from the SQLite
//     backlog (what a backfill older than the memory ring reads), opened
//     when sealed.
func BenchmarkBacklogSealing(b *testing.B) {
	for _, sealed := range []bool{false, true} {
		name := "clear"
		if sealed {
			name = "sealed"
		}
		b.Run("ingest/"+name, func(b *testing.B) { benchSealedIngest(b, sealed) })
		b.Run("backfill/"+name, func(b *testing.B) { benchSealedBackfill(b, sealed) })
	}
}

// benchBacklog opens a SQLite backlog in a temporary directory, sealed
// with a fresh key when sealed is set.
func benchBacklog(b *testing.B, sealed bool) *SQLiteBacklog {
	b.Helper()
	bl, err := OpenSQLiteBacklog(context.Background(), filepath.Join(b.TempDir(), "logs.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bl.Close() })
	if sealed {
		ring, err := seal.Parse(seal.Generate())
		if err != nil {
			b.Fatal(err)
		}
		if err := bl.UseKeys(context.Background(), ring); err != nil {
			b.Fatal(err)
		}
	}
	return bl
}

// benchLines is a batch of realistic lines: an access-log message, a pod
// and two attributes, about 250 bytes encoded.
func benchLines(n int) []Entry {
	es := makeEntries("GET /api/v1/orders/12345/items?expand=price,stock 200 in 12ms user=42 region=eu-west-1 trace=4bf92f3577b34da6a3ce929d0e0e4736", n)
	for i := range es {
		es[i].Pod = "api-7f9c-xk2"
		es[i].Attrs = map[string]string{"http.status": "200", "region": "eu-west-1"}
	}
	return es
}

func benchSealedIngest(b *testing.B, sealed bool) {
	bl := benchBacklog(b, sealed)
	h := newTestHub(b, HubConfig{QueueSize: 256, MaxViewerRate: 1 << 30, Backlog: bl})
	tmpl := benchLines(64)
	buf := make([]Entry, len(tmpl))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf, tmpl)
		if _, err := h.Publish(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := h.writer.flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*len(tmpl))/b.Elapsed().Seconds(), "entries/s")
}

func benchSealedBackfill(b *testing.B, sealed bool) {
	bl := benchBacklog(b, sealed)
	ctx := context.Background()
	const stored, page = 20000, 1000
	seq := int64(0)
	for range stored / 500 {
		es := benchLines(500)
		for i := range es {
			seq++
			es[i].Seq = seq
		}
		if err := bl.Append(ctx, es); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	read := 0
	for i := 0; i < b.N; i++ {
		after := int64(i*page) % (stored - page)
		es, err := bl.Range(ctx, testStream, after, time.Time{}, page)
		if err != nil || len(es) != page {
			b.Fatalf("Range after %d: %d entries, %v", after, len(es), err)
		}
		read += len(es)
	}
	b.StopTimer()
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "entries/s")
}

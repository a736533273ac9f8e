package slogship

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// BenchmarkEncode is the sender's cost per record (off the caller's
// path): one record encoded as an NDJSON line.
//
//	go test ./gateway/sdk/slogship/ -run '^$' -bench Encode -count 6
func BenchmarkEncode(b *testing.B) {
	s := idleShipper(b)
	h := s.Handler(slog.NewJSONHandler(io.Discard, nil)).WithAttrs([]slog.Attr{slog.String("service_version", "1.4.2")}).(*handler)
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "POST /api/checkout 200", 0)
	r.AddAttrs(slog.Int("status", 200), slog.String("order", "ord_123456"), slog.Int("duration_ms", 42), slog.String("tenant", "acme"))
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		h.encode(&buf, r, false)
	}
}

// BenchmarkHandlerOverhead interleaves blocks of 256 records through the
// wrapped handler alone and through slogship, so that a busy machine slows
// both alike, and reports each one's ns/record and the overhead in percent:
//
//	debug-disabled: Debug records below the normal level, no level raised;
//	info-hotpath:   Info records, queue drained by an idle goroutine (the
//	                caller's share);
//	info-shipped:   Info records with the real sender shipping over HTTP.
//
//	go test ./gateway/sdk/slogship/ -run '^$' -bench HandlerOverhead -count 6
func BenchmarkHandlerOverhead(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	shipped, err := New(Config{URL: srv.URL, Token: "tok", Service: "checkout", Env: "staging", NoControl: true,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer shipped.Close(context.Background())
	idle := idleShipper(b)
	inner := slog.NewJSONHandler(io.Discard, nil)
	for _, c := range []struct {
		name  string
		ship  *Shipper
		level slog.Level
	}{
		{"debug-disabled", idle, slog.LevelDebug},
		{"info-hotpath", idle, slog.LevelInfo},
		{"info-shipped", shipped, slog.LevelInfo},
	} {
		b.Run(c.name, func(b *testing.B) {
			alone := slog.New(inner).With("service_version", "1.4.2")
			wrapped := slog.New(c.ship.Handler(inner)).With("service_version", "1.4.2")
			ctx := context.Background()
			// CPU time of this thread, not wall time: on a shared machine the
			// thread is descheduled often, and that time is nobody's cost.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			block := func(log *slog.Logger) time.Duration {
				start := threadCPU()
				for range 256 {
					log.LogAttrs(ctx, c.level, "POST /api/checkout 200", slog.Int("status", 200),
						slog.String("order", "ord_123456"), slog.Int("duration_ms", 42), slog.String("tenant", "acme"))
				}
				return threadCPU() - start
			}
			var tAlone, tWrapped time.Duration
			n := 0
			for b.Loop() {
				tAlone += block(alone)
				tWrapped += block(wrapped)
				n += 256
			}
			b.ReportMetric(float64(tAlone.Nanoseconds())/float64(n), "cpu-ns/alone")
			b.ReportMetric(float64(tWrapped.Nanoseconds())/float64(n), "cpu-ns/wrapped")
			b.ReportMetric(100*(float64(tWrapped)/float64(tAlone)-1), "overhead-%")
		})
	}
}

// threadCPU is the CPU time the calling OS thread has used
// (CLOCK_THREAD_CPUTIME_ID, nanosecond precision; getrusage's thread times
// are tick-sampled and too coarse for blocks this short). The caller must
// be locked to its thread.
func threadCPU() time.Duration {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		return 0
	}
	return time.Duration(ts.Nano())
}

// idleShipper is a Shipper whose queue is emptied every millisecond by a
// goroutine that does nothing else with the records.
func idleShipper(b *testing.B) *Shipper {
	s := &Shipper{cfg: Config{Service: "checkout", Env: "staging"}, queue: newQueue(4096, 512)}
	stop := make(chan struct{})
	b.Cleanup(func() { close(stop) })
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.queue.full:
			case <-t.C:
			case <-stop:
				return
			}
			s.queue.take()
		}
	}()
	return s
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/sdk/slogship"
)

// BenchmarkDebugViewToFirstLine measures, over loopback through the real
// wiring, the time from a viewer opening a tail on a debug grant (dial,
// authentication, the audited stream.opened) until the first debug line
// of a service that logs one debug line per millisecond arrives on that
// tail: the control frame, the level change, the library's batching
// (FlushInterval 100ms), ingest and fan-out. Before each view the level
// is back to normal and the service's queue is empty. lowered-p99-ms is
// the time from closing the view until the service's level is normal again.
//
//	go test ./cmd/loggate -run '^$' -bench DebugViewToFirstLine -benchtime 100x
func BenchmarkDebugViewToFirstLine(b *testing.B) {
	g := startGateway(b, "--dev-source-token", debugSourceToken)
	ship, err := slogship.New(slogship.Config{URL: g.url, Token: debugSourceToken, Service: "checkout", Env: "staging",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer ship.Close(context.Background())
	log := slog.New(ship.Handler(slog.NewTextHandler(io.Discard, nil)))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			log.Debug("debug tick", "n", n)
		}
	}()
	alice := g.token("alice")
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "staging",
		"duration": "1h", "reason": "benchmark", "level": "debug"}, &req); code != http.StatusCreated || req.Grant == nil {
		b.Fatalf("request: %d %+v", code, req)
	}
	u := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + req.Grant.ID + "/tail"
	hdr := http.Header{"Authorization": {"Bearer " + alice}}
	var lat, lowered []time.Duration
	for b.Loop() {
		// Nothing queued: no debug line is in flight.
		if err := ship.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		conn, _, err := websocket.DefaultDialer.Dial(u, hdr)
		if err != nil {
			b.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for got := false; !got; {
			var m struct {
				Type    string `json:"type"`
				Entries []struct {
					Level string `json:"level"`
				} `json:"entries"`
			}
			_, data, err := conn.ReadMessage()
			if err != nil {
				b.Fatalf("tail: %v", err)
			}
			if json.Unmarshal(data, &m) == nil && m.Type == "entries" {
				got = slices.ContainsFunc(m.Entries, func(e struct {
					Level string `json:"level"`
				}) bool {
					return e.Level == "debug"
				})
			}
		}
		lat = append(lat, time.Since(start))
		conn.Close()
		// Back to normal: the time from the close to the service's level.
		closed := time.Now()
		for ship.Stats().Rules != 0 {
			if time.Since(closed) > 10*time.Second {
				b.Fatal("level still raised 10s after the view closed")
			}
			time.Sleep(100 * time.Microsecond)
		}
		lowered = append(lowered, time.Since(closed))
	}
	slices.Sort(lowered)
	b.ReportMetric(float64(lowered[min(len(lowered)-1, int(0.99*float64(len(lowered))))].Microseconds())/1000, "lowered-p99-ms")
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

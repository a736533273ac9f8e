package main

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// benchGrant is approvedGrant for benchmarks.
func benchGrant(b *testing.B, a, g2 *gatewayT, alice, bob string) string {
	b.Helper()
	var req requestJSON
	if code := a.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "prod",
		"duration": "30m", "reason": "INC-99 bench"}, &req); code != http.StatusCreated {
		b.Fatalf("request: %d", code)
	}
	var approved requestJSON
	if code := g2.call("POST", "/api/v1/requests/"+req.ID+"/approve", bob, map[string]string{"comment": "ok"}, &approved); code != 200 || approved.Grant == nil {
		b.Fatalf("approve: %d", code)
	}
	return approved.Grant.ID
}

var sentKey = []byte(`"sent":"`)

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(float64(len(ds))*p))]
}

// BenchmarkReplicaIngestToViewer ingests on replica A at 10,000 lines/s (a
// batch of 100 every 10ms; one op is one batch) while 10 viewers tail on
// replica B, and reports the latency from just before the ingest request
// to the viewer reading the line: p50_ms, p99_ms (goal p99 <= 20ms).
func BenchmarkReplicaIngestToViewer(b *testing.B) {
	srv := redistest.Start(b)
	a, g2 := startReplicas(b, srv.URL(), "--max-tails-per-user", "20", "--max-viewer-rate", "1000000", "--ingest-rate", "1000")
	alice, bob := a.token("alice"), a.token("bob")
	grant := benchGrant(b, a, g2, alice, bob)

	const viewers, batch = 10, 100
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, viewers)
	for i := range conns {
		tc := g2.tail(grant, alice)
		conns[i] = tc.conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			defer func() { mu.Lock(); lat = append(lat, local...); mu.Unlock() }()
			for {
				_, data, err := tc.conn.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now()
				// Cheap scan instead of decoding: the test process also
				// runs both gateways, so the viewers must not eat the CPU.
				for {
					i := bytes.Index(data, sentKey)
					if i < 0 {
						break
					}
					data = data[i+len(sentKey):]
					j := bytes.IndexByte(data, '"')
					if ns, err := strconv.ParseInt(string(data[:j]), 10, 64); err == nil {
						local = append(local, now.Sub(time.Unix(0, ns)))
					}
				}
			}
		}()
	}
	// Batches go out on the tick even when an earlier one is still in
	// flight (up to 8), so a slow request does not lower the rate.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	inflight := make(chan struct{}, 8)
	var sends sync.WaitGroup
	b.ResetTimer()
	began := time.Now()
	for i := range b.N {
		<-tick.C
		inflight <- struct{}{}
		sends.Add(1)
		go func() {
			defer func() { <-inflight; sends.Done() }()
			lines := make([]string, batch)
			sent := strconv.FormatInt(time.Now().UnixNano(), 10)
			for j := range lines {
				lines[j] = fmt.Sprintf(`{"message":"line %d.%d","level":"info","sent":"%s"}`, i, j, sent)
			}
			if code := a.ingest("checkout", "prod", replicaSourceToken, lines...); code != 200 {
				b.Errorf("ingest: %d", code)
			}
		}()
	}
	sends.Wait()
	b.ReportMetric(float64(b.N*batch)/time.Since(began).Seconds(), "lines/s")
	want := b.N * batch * viewers
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(lat)
		mu.Unlock()
		if n >= want || time.Now().After(deadline) {
			break
		}
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.StopTimer()
	for _, c := range conns {
		c.SetReadDeadline(time.Now())
	}
	wg.Wait()
	if len(lat) < want {
		b.Errorf("viewers received %d line deliveries, want %d", len(lat), want)
	}
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(percentile(lat, 1).Microseconds())/1000, "max_ms")
}

// BenchmarkReplicaRevokeToClose measures, per op, a revoke on replica B
// until the holder's tail on replica A is closed (4002): p50_ms, p99_ms
// (goal p99 <= 250ms).
func BenchmarkReplicaRevokeToClose(b *testing.B) {
	srv := redistest.Start(b)
	a, g2 := startReplicas(b, srv.URL())
	alice, bob := a.token("alice"), a.token("bob")
	var lat []time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		grant := benchGrant(b, a, g2, alice, bob)
		tc := a.tail(grant, alice)
		b.StartTimer()
		start := time.Now()
		if code := g2.call("POST", "/api/v1/grants/"+grant+"/revoke", bob, map[string]string{"reason": "bench"}, nil); code != 200 {
			b.Fatalf("revoke: %d", code)
		}
		tc.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			_, _, err := tc.conn.ReadMessage()
			if err != nil {
				if !strings.Contains(err.Error(), "4002") {
					b.Fatalf("tail ended with %v, want close 4002", err)
				}
				break
			}
		}
		lat = append(lat, time.Since(start))
		tc.conn.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99_ms")
}

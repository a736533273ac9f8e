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
)

// BenchmarkIngestToViewer measures the time from sending an NDJSON batch to
// the ingest endpoint until each viewer's WebSocket delivers each line, over
// loopback, through the real wiring (auth, redaction, fan-out, audit).
// Client and server share the machine's cores: the load generator and the
// viewers run in this test process beside the gateway.
//
//	go test ./cmd/loggate -run '^$' -bench IngestToViewer -benchtime 1x
func BenchmarkIngestToViewer(b *testing.B) {
	for _, c := range []struct {
		viewers, rate int
	}{{100, 1000}, {10, 10000}} {
		b.Run(fmt.Sprintf("viewers=%d/lines_per_s=%d", c.viewers, c.rate), func(b *testing.B) {
			benchIngestToViewer(b, c.viewers, c.rate, 3*time.Second)
		})
	}
}

var sentNsKey = []byte(`"sent_ns":"`)

func benchIngestToViewer(b *testing.B, viewers, rate int, dur time.Duration) {
	g := startGateway(b, "--max-tails-per-user", "1000", "--max-tails-per-stream", "1000",
		"--max-viewer-rate", "100000", "--ingest-rate", "10000")
	alice := g.token("alice")
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "staging",
		"duration": "1h", "reason": "INC-1 latency benchmark"}, &req); code != 201 || req.Grant == nil {
		b.Fatalf("request: %d %+v", code, req)
	}
	src := g.r.SourceTokens["checkout/staging"]
	wsURL := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + req.Grant.ID + "/tail"

	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	conns := make([]*websocket.Conn, viewers)
	for i := range conns {
		conn, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + alice}})
		if err != nil {
			b.Fatalf("viewer %d: %v", i, err)
		}
		var sub map[string]any
		if err := conn.ReadJSON(&sub); err != nil || sub["type"] != "subscribed" {
			b.Fatalf("viewer %d: %v %v", i, sub, err)
		}
		conns[i] = conn
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, rate*int(dur/time.Second))
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					break
				}
				now := time.Now()
				// A cheap scan rather than a JSON decode: the viewers share
				// the cores with the gateway, so the harness stays light.
				rest := data
				for {
					i := bytes.Index(rest, sentNsKey)
					if i < 0 {
						break
					}
					rest = rest[i+len(sentNsKey):]
					j := bytes.IndexByte(rest, '"')
					if ns, err := strconv.ParseInt(string(rest[:j]), 10, 64); err == nil {
						local = append(local, now.Sub(time.Unix(0, ns)))
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}

	// Send a batch every 10ms: rate/100 lines of ~250 bytes each.
	const tick = 10 * time.Millisecond
	perBatch := max(1, rate/100)
	pad := strings.Repeat("x", 150)
	client := &http.Client{}
	sent := 0
	b.ResetTimer()
	start := time.Now()
	next := start
	for time.Since(start) < dur {
		var body strings.Builder
		ts := strconv.FormatInt(time.Now().UnixNano(), 10)
		for i := range perBatch {
			fmt.Fprintf(&body, `{"message":"GET /api/cart 200 line %d %s","level":"info","sent_ns":"%s"}`+"\n", sent+i, pad, ts)
		}
		r, _ := http.NewRequest("POST", g.url+"/api/v1/ingest?service=checkout&env=staging", strings.NewReader(body.String()))
		r.Header.Set("Authorization", "Bearer "+src)
		resp, err := client.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("ingest: %d", resp.StatusCode)
		}
		sent += perBatch
		next = next.Add(tick)
		time.Sleep(time.Until(next))
	}
	time.Sleep(500 * time.Millisecond) // let the last lines arrive
	b.StopTimer()
	for _, c := range conns {
		c.Close()
	}
	wg.Wait()
	if len(lat) == 0 {
		b.Fatal("no lines received")
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(pct(1.0), "max-ms")
	b.ReportMetric(float64(len(lat))/float64(sent*viewers), "delivered-fraction")
	b.ReportMetric(float64(sent)/dur.Seconds(), "lines/s")
}

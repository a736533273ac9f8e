package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// soakKnobs are the soak's settings, from LOGGATE_SOAK_* variables.
type soakKnobs struct {
	duration time.Duration // LOGGATE_SOAK_DURATION, default 10m
	rate     int           // LOGGATE_SOAK_RATE lines/s offered in total, default 20000
	viewers  int           // LOGGATE_SOAK_VIEWERS, default 200
	streams  int           // LOGGATE_SOAK_STREAMS the lines and viewers are spread over, default 10
	outage   time.Duration // LOGGATE_SOAK_OUTAGE Redis stays killed this long mid-run, default 5s
	sample   time.Duration // LOGGATE_SOAK_SAMPLE interval of the RSS/goroutine table, default 15s
}

func soakSettings(b *testing.B) soakKnobs {
	k := soakKnobs{duration: 10 * time.Minute, rate: 20000, viewers: 200, streams: 10, outage: 5 * time.Second, sample: 15 * time.Second}
	dur := func(name string, p *time.Duration) {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				b.Fatalf("%s=%q: want a positive duration", name, v)
			}
			*p = d
		}
	}
	num := func(name string, p *int) {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				b.Fatalf("%s=%q: want a positive integer", name, v)
			}
			*p = n
		}
	}
	dur("LOGGATE_SOAK_DURATION", &k.duration)
	num("LOGGATE_SOAK_RATE", &k.rate)
	num("LOGGATE_SOAK_VIEWERS", &k.viewers)
	num("LOGGATE_SOAK_STREAMS", &k.streams)
	dur("LOGGATE_SOAK_OUTAGE", &k.outage)
	dur("LOGGATE_SOAK_SAMPLE", &k.sample)
	return k
}

// BenchmarkSoak runs the real loggate binary on a real redis-server for a
// bounded time under ingest load with many viewers, kills Redis halfway and
// restarts it, and reports memory and goroutines over time, per-viewer
// delivery accounting, the audit spool, unclosed views and `audit verify`.
// It runs only when LOGGATE_SOAK=1 (see docs/benchmarks.md):
//
//	LOGGATE_SOAK=1 LOGGATE_SOAK_DURATION=3m go test ./cmd/loggate -run '^$' -bench Soak -benchtime 1x -timeout 30m
func BenchmarkSoak(b *testing.B) {
	if os.Getenv("LOGGATE_SOAK") != "1" {
		b.Skip("set LOGGATE_SOAK=1 to run the soak (minutes long; see docs/benchmarks.md)")
	}
	k := soakSettings(b)
	for range b.N {
		runSoak(b, k)
	}
}

type soakViewer struct {
	stream   int
	startSeq int64 // seq before the first entry or drop seen; -1 until then
	lastSeq  int64 // highest seq delivered or accounted
	entries  int64
	dropped  int64
	gaps     int64
	// gapReasons counts the seqs announced by "gap" messages per reason,
	// "first:" prefixed for a gap before a connection's first entries (a
	// resume with after= older than what is kept) and "later:" for one
	// after them (entries trimmed before the backfill read them, or missed
	// by the replica's feed).
	gapReasons map[string]int64
	closes     map[int]int // close code -> times (reconnected after each)
}

type soakSample struct {
	at         time.Duration
	rssKB      int64
	goroutines int64
	tails      int64
	spool      string
	note       string
}

func runSoak(b *testing.B, k soakKnobs) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "loggate")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatalf("build loggate: %v", err)
	}
	srv := redistest.Start(b)
	keys, auditKey := sharedKeyFile(b), sharedAuditKeyFile(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	base := "http://" + addr
	logFile, _ := os.Create(filepath.Join(dir, "serve.log"))
	defer logFile.Close()
	serve := exec.Command(bin, "serve", "--dev", "--listen", addr, "--data", filepath.Join(dir, "data"), "--dev-demo-logs=false",
		"--log-level", "warn", "--redis", srv.URL(), "--dev-source-token", replicaSourceToken, "--session-key-file", keys,
		"--audit-signing-key-file", auditKey, "--max-tails-per-user", strconv.Itoa(k.viewers+10),
		"--max-tails-per-stream", strconv.Itoa(k.viewers+10), "--ingest-rate", "100000", "--max-viewer-rate", "1000000")
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		b.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = serve.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- serve.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			<-done
		}
	}
	defer stop()
	client := &http.Client{Timeout: 30 * time.Second}
	waitReady := func(limit time.Duration) bool {
		deadline := time.Now().Add(limit)
		for time.Now().Before(deadline) {
			if resp, err := client.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return true
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}
	if !waitReady(30 * time.Second) {
		b.Fatalf("loggate did not become ready; see %s", logFile.Name())
	}
	token := func(user string) string {
		form := url.Values{"grant_type": {"password"}, "client_id": {"loggate"}, "username": {user}, "password": {user},
			"scope": {"openid profile email groups"}}
		resp, err := client.PostForm(base+"/dev/oidc/token", form)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			IDToken string `json:"id_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
			b.Fatalf("token for %s: %d %v", user, resp.StatusCode, err)
		}
		return tok.IDToken
	}
	alice, carol := token("alice"), token("carol")
	srcBody := strings.NewReader(`{"name":"soak","streams":[{"service":"*","env":"staging"}]}`)
	srcReq, _ := http.NewRequest("POST", base+"/api/v1/sources", srcBody)
	srcReq.Header.Set("Authorization", "Bearer "+carol)
	srcReq.Header.Set("Content-Type", "application/json")
	srcResp, err := client.Do(srcReq)
	if err != nil {
		b.Fatal(err)
	}
	var source struct {
		Token string `json:"token"`
	}
	err = json.NewDecoder(srcResp.Body).Decode(&source)
	srcResp.Body.Close()
	if err != nil || source.Token == "" {
		b.Fatalf("create source: %d %v", srcResp.StatusCode, err)
	}
	ingest := func(stream int, body []byte) (int, error) {
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/api/v1/ingest?service=soak%d&env=staging", base, stream), bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+source.Token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	grants := make([]string, k.streams)
	for i := range k.streams {
		if code, err := ingest(i, []byte(`{"message":"soak start"}`+"\n")); code != 200 {
			b.Fatalf("first ingest on soak%d: %d %v", i, code, err)
		}
		body, _ := json.Marshal(map[string]any{"service": fmt.Sprintf("soak%d", i), "env": "staging", "duration": "8h", "reason": "soak"})
		var r requestJSON
		var resp *http.Response
		// The new stream becomes known to the request check when the feed
		// reader has seen it: retry "unknown stream" (404) for a while.
		for try := 0; ; try++ {
			req, _ := http.NewRequest("POST", base+"/api/v1/requests", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+alice)
			req.Header.Set("Content-Type", "application/json")
			resp, err = client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			r = requestJSON{}
			err = json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound || try == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || r.Grant == nil {
			b.Fatalf("grant for soak%d: %d %+v %v", i, resp.StatusCode, r, err)
		}
		grants[i] = r.Grant.ID
	}

	metric := func(name string) (float64, string) {
		resp, err := client.Get(base + "/metrics")
		if err != nil {
			return -1, "n/a"
		}
		defer resp.Body.Close()
		val := -1.0
		var spool []string
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "#") {
				continue
			}
			if f := strings.Fields(line); len(f) == 2 && f[0] == name {
				val, _ = strconv.ParseFloat(f[1], 64)
			}
			if strings.Contains(line, "spool") {
				spool = append(spool, line)
			}
		}
		if len(spool) == 0 {
			return val, "n/a"
		}
		return val, strings.Join(spool, "; ")
	}
	rss := func() int64 {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", serve.Process.Pid))
		if err != nil {
			return -1
		}
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				return n
			}
		}
		return -1
	}
	start := time.Now()
	var samplesMu sync.Mutex
	var samples []soakSample
	sample := func(note string) {
		g, _ := metric("go_goroutines")
		tails, sp := metric("loggate_tails_open")
		samplesMu.Lock()
		samples = append(samples, soakSample{at: time.Since(start).Round(time.Second), rssKB: rss(), goroutines: int64(g), tails: int64(tails), spool: sp, note: note})
		samplesMu.Unlock()
	}
	sample("baseline, before viewers")
	baseGoroutines := samples[0].goroutines

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	viewers := make([]*soakViewer, k.viewers)
	var vwg sync.WaitGroup
	stopViewers := make(chan struct{})
	for i := range viewers {
		v := &soakViewer{stream: i % k.streams, startSeq: -1, closes: map[int]int{}, gapReasons: map[string]int64{}}
		viewers[i] = v
		vwg.Add(1)
		go func() {
			defer vwg.Done()
			runSoakViewer(ctx, base, grants[v.stream], alice, v, stopViewers)
		}()
	}

	// Load: every 50ms, one NDJSON batch per stream.
	var offeredOK, offeredRefused atomic.Int64
	loadCtx, stopLoad := context.WithCancel(ctx)
	var lwg sync.WaitGroup
	perBatch := max(1, k.rate/20/k.streams)
	for s := range k.streams {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			var buf bytes.Buffer
			n := 0
			for {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
				}
				buf.Reset()
				for range perBatch {
					n++
					fmt.Fprintf(&buf, `{"message":"soak line %d of stream %d","level":"info","attrs":{"k":"v"}}`+"\n", n, s)
				}
				if code, err := ingest(s, buf.Bytes()); err == nil && code == 200 {
					offeredOK.Add(int64(perBatch))
				} else {
					offeredRefused.Add(int64(perBatch))
				}
			}
		}()
	}
	sampleTick := time.NewTicker(k.sample)
	defer sampleTick.Stop()
	half := time.After(k.duration / 2)
	end := time.After(k.duration)
	var outageAt, recoveredAt time.Duration
loop:
	for {
		select {
		case <-sampleTick.C:
			sample("")
		case <-half:
			outageAt = time.Since(start)
			srv.Stop()
			sample("Redis killed")
			time.Sleep(k.outage)
			srv.Restart()
			if !waitReady(60 * time.Second) {
				b.Errorf("loggate not ready within 60s of Redis restarting")
			}
			recoveredAt = time.Since(start)
			sample("Redis restarted, ready")
		case <-end:
			break loop
		}
	}
	stopLoad()
	lwg.Wait()
	loadDuration := time.Since(start)
	sample("load stopped")

	// Final seqs straight from Redis: what each viewer was offered ends there.
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rc.Close()
	final := make([]int64, k.streams)
	for s := range k.streams {
		final[s], _ = rc.Get(context.Background(), fmt.Sprintf("%slogseq:soak%d/staging", redisPrefix, s)).Int64()
	}
	// Let viewers catch up to the end (or give up after 30s), then close them.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		behind := 0
		for _, v := range viewers {
			if atomic.LoadInt64(&v.lastSeq) < final[v.stream] {
				behind++
			}
		}
		if behind == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stopViewers)
	vwg.Wait()
	// Views closed: the gauge and the goroutines go back down.
	settle := time.Now().Add(30 * time.Second)
	for time.Now().Before(settle) {
		t, _ := metric("loggate_tails_open")
		g, _ := metric("go_goroutines")
		if t == 0 && int64(g) <= baseGoroutines+5 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sample("viewers closed")

	// Unclosed views in the trail.
	req, _ := http.NewRequest("GET", base+"/api/v1/audit/export?format=ndjson", nil)
	req.Header.Set("Authorization", "Bearer "+carol)
	opened, closed := map[string]bool{}, map[string]bool{}
	if resp, err := client.Do(req); err == nil {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Action  string         `json:"action"`
				Outcome string         `json:"outcome"`
				Details map[string]any `json:"details"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			id, _ := ev.Details["view_id"].(string)
			switch {
			case ev.Action == "stream.opened" && ev.Outcome == "success" && id != "":
				opened[id] = true
			case ev.Action == "stream.closed" && id != "":
				closed[id] = true
			}
		}
		resp.Body.Close()
	} else {
		b.Errorf("audit export: %v", err)
	}
	unclosed := 0
	for id := range opened {
		if !closed[id] {
			unclosed++
		}
	}
	stop()
	verify := exec.Command(bin, "audit", "verify", "--redis", srv.URL(), "--audit-signing-key-file", auditKey)
	verifyOut, verifyErr := verify.CombinedOutput()

	// Report.
	var r strings.Builder
	fmt.Fprintf(&r, "soak: %s (load %s), %d viewers on %d streams, target %d lines/s; Redis killed at %s for %s, ready again at %s\n",
		k.duration, loadDuration.Round(time.Second), k.viewers, k.streams, k.rate, outageAt.Round(time.Second), k.outage, recoveredAt.Round(time.Second))
	fmt.Fprintf(&r, "offered: %d lines accepted (%.0f lines/s), %d refused (503 during the outage or errors)\n",
		offeredOK.Load(), float64(offeredOK.Load())/loadDuration.Seconds(), offeredRefused.Load())
	fmt.Fprintf(&r, "\n| t | RSS MiB | goroutines | tails | spool metrics | note |\n|---|---|---|---|---|---|\n")
	for _, s := range samples {
		fmt.Fprintf(&r, "| %s | %.1f | %d | %d | %s | %s |\n", s.at, float64(s.rssKB)/1024, s.goroutines, s.tails, s.spool, s.note)
	}
	var delivered, dropped, gaps, silent []int64
	closes := map[int]int{}
	gapReasons := map[string]int64{}
	gapViewers := 0
	silentViewers := 0
	for _, v := range viewers {
		offered := final[v.stream] - v.startSeq
		if v.startSeq < 0 {
			offered = 0
		}
		miss := offered - v.entries - v.dropped - v.gaps
		delivered, dropped, gaps, silent = append(delivered, v.entries), append(dropped, v.dropped), append(gaps, v.gaps), append(silent, miss)
		if miss != 0 {
			silentViewers++
		}
		for c, n := range v.closes {
			closes[c] += n
		}
		for why, n := range v.gapReasons {
			gapReasons[why] += n
		}
		if v.gaps > 0 {
			gapViewers++
		}
	}
	stat := func(xs []int64) string {
		s := slices.Clone(xs)
		slices.Sort(s)
		var sum int64
		for _, x := range s {
			sum += x
		}
		return fmt.Sprintf("min %d / median %d / max %d / total %d", s[0], s[len(s)/2], s[len(s)-1], sum)
	}
	fmt.Fprintf(&r, "\nper viewer: delivered %s\n", stat(delivered))
	fmt.Fprintf(&r, "per viewer: dropped (announced) %s\n", stat(dropped))
	fmt.Fprintf(&r, "per viewer: gaps (announced) %s; viewers with any: %d; seqs by when:reason: %v\n", stat(gaps), gapViewers, gapReasons)
	fmt.Fprintf(&r, "per viewer: unaccounted (offered - delivered - dropped - gaps) %s; viewers with any: %d\n", stat(silent), silentViewers)
	fmt.Fprintf(&r, "tail ends the viewers reconnected after (close code: count): %v\n", closes)
	fmt.Fprintf(&r, "goroutines: baseline %d, after viewers closed %d\n", baseGoroutines, samples[len(samples)-1].goroutines)
	fmt.Fprintf(&r, "views in the trail: %d opened, %d without stream.closed\n", len(opened), unclosed)
	fmt.Fprintf(&r, "audit verify (exit %v):\n%s\n", verifyErr, strings.TrimSpace(string(verifyOut)))
	b.Log("\n" + r.String())
	if p := os.Getenv("LOGGATE_SOAK_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(r.String()), 0o644); err != nil {
			b.Error(err)
		}
	}
	b.ReportMetric(float64(offeredOK.Load())/loadDuration.Seconds(), "lines/s")
	b.ReportMetric(float64(unclosed), "unclosed-views")
	b.ReportMetric(float64(silentViewers), "viewers-with-silent-loss")
}

// runSoakViewer tails until stop is closed, reconnecting (resuming after
// the last seq) whenever the tail ends, and accounts for every seq.
func runSoakViewer(ctx context.Context, base, grant, token string, v *soakViewer, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		u := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/grants/" + grant + "/tail"
		if last := atomic.LoadInt64(&v.lastSeq); last > 0 {
			u += "?after=" + strconv.FormatInt(last, 10)
		}
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		conn, _, err := d.DialContext(ctx, u, http.Header{"Authorization": {"Bearer " + token}})
		if err != nil {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-stop:
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				time.AfterFunc(3*time.Second, func() { conn.Close() })
			case <-done:
			}
		}()
		code := soakRead(conn, v)
		close(done)
		conn.Close()
		v.closes[code]++
	}
}

// soakRead reads one tail connection until it ends and returns the close code.
func soakRead(conn *websocket.Conn, v *soakViewer) int {
	first := true // no entries message yet on this connection
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return websocket.CloseAbnormalClosure
		}
		var m struct {
			Type    string `json:"type"`
			Reason  string `json:"reason"`
			Count   int64  `json:"count"`
			FromSeq int64  `json:"from_seq"`
			ToSeq   int64  `json:"to_seq"`
			Entries []struct {
				Seq int64 `json:"seq"`
			} `json:"entries"`
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		mark := func(from, to int64) {
			if v.startSeq < 0 {
				v.startSeq = from - 1
			}
			if to > atomic.LoadInt64(&v.lastSeq) {
				atomic.StoreInt64(&v.lastSeq, to)
			}
		}
		switch m.Type {
		case "entries":
			for _, e := range m.Entries {
				if e.Seq <= atomic.LoadInt64(&v.lastSeq) {
					continue // a resume repeats nothing, but be sure
				}
				mark(e.Seq, e.Seq)
				v.entries++
			}
		case "dropped":
			mark(m.FromSeq, m.ToSeq)
			v.dropped += m.Count
		case "gap":
			mark(m.FromSeq, m.ToSeq)
			v.gaps += m.ToSeq - m.FromSeq + 1
			when := "later:"
			if first {
				when = "first:"
			}
			v.gapReasons[when+m.Reason] += m.ToSeq - m.FromSeq + 1
		}
		if m.Type == "entries" {
			first = false
		}
	}
}

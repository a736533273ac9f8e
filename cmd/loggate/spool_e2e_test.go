package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

type readyJSON struct {
	Ready bool `json:"ready"`
	Spool *struct {
		Depth   int    `json:"depth"`
		Spooled int64  `json:"spooled"`
		Drained int64  `json:"drained"`
		Failing string `json:"failing"`
	} `json:"audit_spool"`
}

func (g *gatewayT) closedEvents(grant, token string) []auditJSON {
	g.t.Helper()
	var page struct {
		Items []auditJSON `json:"items"`
	}
	if code := g.call("GET", "/api/v1/audit?action=stream.closed&grant="+grant, token, nil, &page); code != 200 {
		g.t.Fatalf("audit search: %d", code)
	}
	return page.Items
}

// A view that ends while Redis (the audit trail) is down is recorded once
// Redis is back, by the replica's spool, with its real reason and counts
// and when it was spooled; a restart then closes nothing twice.
func TestViewEndedDuringARedisOutageIsRecordedOnceWhenRedisReturns(t *testing.T) {
	srv := redistest.Start(t)
	data := t.TempDir()
	args := []string{"--redis", srv.URL(), "--dev-source-token", replicaSourceToken, "--session-key-file", sharedKeyFile(t),
		"--audit-signing-key-file", sharedAuditKeyFile(t)}
	g := startGatewayData(t, data, args...)
	alice, carol := g.token("alice"), g.token("carol")
	req := g.stagingGrant(alice, "10m", "INC-17 outage")
	tc := g.tail(req.Grant.ID, alice)
	if code := g.ingest("checkout", "staging", replicaSourceToken, `{"message":"one"}`, `{"message":"two"}`); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	if es, _, _ := tc.next(2, 10*time.Second); len(es) != 2 {
		t.Fatalf("entries before the outage: %v", es)
	}

	srv.Stop() // kill -9: the trail is gone
	if _, end, code := tc.next(0, 10*time.Second); code != 4006 {
		t.Fatalf("tail when Redis stops: end %v, close %d; want 4006", end, code)
	}
	var ready readyJSON
	eventually(t, "the view's stream.closed in the spool", 15*time.Second, func() bool {
		g.call("GET", "/readyz", "", nil, &ready)
		return ready.Spool != nil && ready.Spool.Depth == 1
	})
	if ready.Ready {
		t.Error("/readyz says ready with the trail down")
	}

	srv.Restart()
	eventually(t, "the spool drained once Redis is back", 20*time.Second, func() bool {
		g.call("GET", "/readyz", "", nil, &ready)
		return ready.Spool != nil && ready.Spool.Depth == 0 && ready.Spool.Drained == 1
	})
	closed := g.closedEvents(req.Grant.ID, carol)
	if len(closed) != 1 {
		t.Fatalf("stream.closed events = %d, want exactly 1: %+v", len(closed), closed)
	}
	d := closed[0].Details
	if closed[0].Outcome != "success" || d["close_reason"] != "backend_unavailable" || d["entries"] != float64(2) {
		t.Errorf("stream.closed = %s %v, want success, backend_unavailable, entries 2", closed[0].Outcome, d)
	}
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(d["spooled_at"]))
	if err != nil || at.Before(closed[0].Time) {
		t.Errorf("spooled_at = %v (event time %v), want a time at or after the event", d["spooled_at"], closed[0].Time)
	}
	metrics := scrape(t, g.url)
	if metrics["loggate_audit_spooled_total"] != 1 || metrics["loggate_audit_spool_depth"] != 0 {
		t.Errorf("metrics: spooled %v, depth %v; want 1, 0", metrics["loggate_audit_spooled_total"], metrics["loggate_audit_spool_depth"])
	}

	// A restart finds the view closed: no interrupted close on top.
	g.stop()
	g = startGatewayData(t, data, args...)
	carol = g.token("carol") // the development provider's keys are new
	if closed := g.closedEvents(req.Grant.ID, carol); len(closed) != 1 {
		t.Errorf("stream.closed events after a restart = %d, want 1: %+v", len(closed), closed)
	}
	var verify struct {
		Verified bool `json:"verified"`
	}
	if code := g.call("GET", "/api/v1/audit/verify?fresh=true", carol, nil, &verify); code != 200 || !verify.Verified {
		t.Errorf("audit verify: %d %+v", code, verify)
	}
}

// scrape reads the gateway's metrics without labels.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// kill -9 mid-view: the interrupted stream.closed written at the next start
// carries the counts the view saved locally, at most one
// --view-counts-interval behind what the viewer received.
func TestCrashKeepsTheCountsOfALiveView(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	v := startCrashView(t, "INC-17 crash counts")
	g, conn := v.g, v.tc.conn
	lines := make([]string, 40)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"message":"line %d"}`, i)
	}
	if code := g.ingest("checkout", "staging", "lgs_crash_test_token", lines...); code != 200 {
		t.Fatalf("ingest: %d", code)
	}
	received := len(readEntries(t, conn, len(lines)))
	// Two saves completed after the viewer had its entries: the second began
	// after they were sent. The view keeps receiving meanwhile (an idle view
	// saves nothing new).
	ingested := len(lines)
	v.awaitSaves("two more saves of the view's counts", 2, func() {
		if g.ingest("checkout", "staging", "lgs_crash_test_token", `{"message":"more"}`) == 200 {
			ingested++
			readEntries(t, conn, 1)
		}
	})
	_, closed := v.crash()
	if len(closed) != 1 || closed[0].Outcome != "interrupted" {
		t.Fatalf("stream.closed after the crash = %+v, want one, interrupted", closed)
	}
	d := closed[0].Details
	entries, _ := d["entries"].(float64)
	if int(entries) < received || int(entries) > ingested {
		t.Errorf("interrupted view's entries = %v, want between %d (received before the last saves) and %d (ingested)", d["entries"], received, ingested)
	}
	if d["counts_from"] != "checkpoint" || d["counts_at"] == nil || d["sha256"] == nil || d["entries_sha256"] == nil || d["bytes"] == float64(0) {
		t.Errorf("interrupted close details = %v, want counts_from checkpoint with counts_at, sha256 and bytes", d)
	}
}

// The replica stops while the view's close still waits in its spool: the
// next start must not close the view as interrupted (its real close is in
// the spool), and the drainer appends that close once.
func TestSpooledCloseSurvivesARestartAndIsNotRecoveredTwice(t *testing.T) {
	srv := redistest.Start(t)
	data := t.TempDir()
	args := []string{"--redis", srv.URL(), "--dev-source-token", replicaSourceToken, "--session-key-file", sharedKeyFile(t),
		"--audit-signing-key-file", sharedAuditKeyFile(t)}
	g := startGatewayData(t, data, args...)
	alice := g.token("alice")
	req := g.stagingGrant(alice, "10m", "INC-17 restart")
	tc := g.tail(req.Grant.ID, alice)
	srv.Stop()
	if _, _, code := tc.next(0, 10*time.Second); code != 4006 {
		t.Fatalf("tail when Redis stops: close %d, want 4006", code)
	}
	var ready readyJSON
	eventually(t, "the close spooled", 15*time.Second, func() bool {
		g.call("GET", "/readyz", "", nil, &ready)
		return ready.Spool != nil && ready.Spool.Depth == 1
	})
	g.stop()

	srv.Restart()
	g = startGatewayData(t, data, args...)
	carol := g.token("carol")
	eventually(t, "the spool drained after the restart", 20*time.Second, func() bool {
		g.call("GET", "/readyz", "", nil, &ready)
		return ready.Spool != nil && ready.Spool.Depth == 0
	})
	closed := g.closedEvents(req.Grant.ID, carol)
	if len(closed) != 1 || closed[0].Outcome != "success" || closed[0].Details["close_reason"] != "backend_unavailable" ||
		closed[0].Details["spooled_at"] == nil {
		t.Errorf("stream.closed events = %+v, want exactly the spooled one (backend_unavailable, spooled_at)", closed)
	}
}

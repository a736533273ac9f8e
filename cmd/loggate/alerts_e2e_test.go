package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/alert/alertmanagertest"
	"github.com/loggate/loggate/gateway/cluster/redistest"
)

const e2eRules = `- name: checkout-payment-errors
  service: checkout
  env: staging
  level: error
  message: payment failed
  threshold: 3
  window: 2s
  severity: critical
  labels: {team: payments}
`

// TestAlertsReachARealAlertmanager: lines ingested into loggate fire a
// rule; Alertmanager's own API shows the alert with loggate's labels and a
// link back; when the lines stop it is resolved there. A second,
// unreachable Alertmanager never holds up ingest.
func TestAlertsReachARealAlertmanager(t *testing.T) {
	am := alertmanagertest.Start(t)
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, []byte(e2eRules), 0o600); err != nil {
		t.Fatal(err)
	}
	down := "http://127.0.0.1:1" // nothing listens there
	g := startGateway(t, "--alert-rules", rules, "--alertmanager-url", am+","+down)
	tok := g.r.SourceTokens["checkout/staging"]
	line := `{"level":"error","message":"payment failed: declined"}`
	if code := g.ingest("checkout", "staging", tok, line, line, line); code != http.StatusOK {
		t.Fatalf("ingest: %d", code)
	}
	var got []alertmanagertest.Alert
	eventually(t, "the alert in Alertmanager", 15*time.Second, func() bool {
		got = alertmanagertest.Active(t, am, "checkout-payment-errors")
		return len(got) == 1
	})
	a := got[0]
	for k, want := range map[string]string{"alertname": "checkout-payment-errors", "service": "checkout", "env": "staging",
		"severity": "critical", "team": "payments"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], want)
		}
	}
	if a.Annotations["count"] != "3" || a.Annotations["window"] != "2s" {
		t.Errorf("annotations = %v", a.Annotations)
	}
	if !strings.HasPrefix(a.GeneratorURL, g.url+"/?") || !strings.Contains(a.GeneratorURL, "alert_id=alt_") {
		t.Errorf("generatorURL = %q, want loggate's request form", a.GeneratorURL)
	}
	security := g.token("carol")
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if code := g.call("GET", "/api/v1/alerts", security, nil, &list); code != 200 || len(list.Items) != 1 {
		t.Fatalf("GET /api/v1/alerts = %d %v", code, list)
	}
	for _, k := range []string{"id", "rule", "state", "service", "env", "count", "started_at", "ended_at"} {
		if _, ok := list.Items[0][k]; !ok {
			t.Errorf("alert item has no %q: %v", k, list.Items[0])
		}
	}

	eventually(t, "the alert resolved in Alertmanager", 20*time.Second, func() bool {
		return len(alertmanagertest.Active(t, am, "checkout-payment-errors")) == 0
	})
	// The unreachable receiver was tried and is being retried; ingest never waited.
	eventually(t, "failed attempts counted", 10*time.Second, func() bool {
		resp, err := http.Get(g.url + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.Contains(string(b), "loggate_alertmanager_failed_attempts_total") &&
			!strings.Contains(string(b), "loggate_alertmanager_failed_attempts_total 0\n")
	})
}

func TestBadAlertRulesFailStartup(t *testing.T) {
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, []byte("- {name: broken, message: '(', window: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runServe(t.Context(), []string{"--dev", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--dev-demo-logs=false",
		"--alert-rules", rules}, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), rules) || !strings.Contains(err.Error(), `rule "broken"`) ||
		!strings.Contains(err.Error(), "field message") {
		t.Fatalf("serve with a bad rules file: %v", err)
	}
}

// TestTwoGatewaysOneRedisOneAlert: two replicas share Redis; lines ingested
// on both together cross a threshold neither reaches alone; the cluster
// raises one alert (one alert.fired event, one item on either replica, one
// alert in Alertmanager), and resolves it once.
func TestTwoGatewaysOneRedisOneAlert(t *testing.T) {
	am := alertmanagertest.Start(t)
	redisURL, _ := redistest.FromEnvOrStart(t)
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, []byte(`- {name: cluster-errors, service: checkout, env: prod, message: boom, threshold: 3, window: 3s}`), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := startReplicas(t, redisURL, "--alert-rules", rules, "--alertmanager-url", am)
	line := `{"level":"error","message":"boom"}`
	if code := a.ingest("checkout", "prod", replicaSourceToken, line, line); code != 200 {
		t.Fatalf("ingest on A: %d", code)
	}
	if code := b.ingest("checkout", "prod", replicaSourceToken, line, line); code != 200 {
		t.Fatalf("ingest on B: %d", code)
	}
	eventually(t, "the cluster alert in Alertmanager", 15*time.Second, func() bool {
		return len(alertmanagertest.Active(t, am, "cluster-errors")) == 1
	})
	carol := a.token("carol")
	for _, g := range []*gatewayT{a, b} {
		var list struct {
			Items []map[string]any `json:"items"`
		}
		if code := g.call("GET", "/api/v1/alerts", carol, nil, &list); code != 200 || len(list.Items) != 1 || list.Items[0]["count"] != float64(4) {
			t.Errorf("GET /api/v1/alerts on %s = %d %v, want one alert counting 4", g.url, code, list.Items)
		}
	}
	eventually(t, "the cluster alert resolved", 20*time.Second, func() bool {
		return len(alertmanagertest.Active(t, am, "cluster-errors")) == 0
	})
	var fired, resolved struct {
		Items []map[string]any `json:"items"`
	}
	a.call("GET", "/api/v1/audit?action=alert.fired", carol, nil, &fired)
	a.call("GET", "/api/v1/audit?action=alert.resolved", carol, nil, &resolved)
	if len(fired.Items) != 1 || len(resolved.Items) != 1 {
		t.Errorf("alert.fired %d, alert.resolved %d; want one each for the cluster", len(fired.Items), len(resolved.Items))
	}
}

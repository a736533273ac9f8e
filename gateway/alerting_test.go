package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

const testAlertRules = `
- name: checkout-payment-errors
  service: checkout
  env: staging
  level: error
  message: payment failed
  threshold: 3
  window: 1m
- name: auth-failures
  kind: audit
  action: auth.failed
  threshold: 5
  window: 5m
  group_by: [actor]
`

type alertHarness struct {
	*harness
	engine    *alert.Engine
	rulesFile string
	token     string
}

func newAlertHarness(t *testing.T) *alertHarness {
	return newAlertHarnessWith(t, testAlertRules, nil)
}

// newAlertHarnessWith starts a gateway with these rules and a source for
// checkout/staging and checkout/prod; configure, if set, edits the Config.
func newAlertHarnessWith(t *testing.T, rules string, configure func(*Config)) *alertHarness {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(rulesFile, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := alert.Parse(rulesFile, []byte(rules))
	if err != nil {
		t.Fatal(err)
	}
	st, err := alert.OpenStore(ctx, filepath.Join(dir, "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ah := &alertHarness{rulesFile: rulesFile}
	ah.harness = newHarnessWith(t, func(c *Config) {
		ah.engine = alert.NewEngine(alert.EngineConfig{Now: c.Now})
		ah.engine.SetRules(set)
		c.Alerts, c.AlertStore, c.AlertRulesFile = ah.engine, st, rulesFile
		if configure != nil {
			configure(c)
		}
	})
	ah.engine.SetSink(ah.srv)
	ah.token = NewSourceToken()
	if _, err := ah.srv.CreateSource(ctx, systemActor, "alerts", ah.token, []store.StreamRef{{Service: "checkout", Env: "staging"}, {Service: "checkout", Env: "prod"}}); err != nil {
		t.Fatal(err)
	}
	return ah
}

// ingest posts NDJSON lines to checkout/staging.
func (ah *alertHarness) ingest(lines ...string) {
	ah.t.Helper()
	ah.ingestTo("staging", lines...)
}

// ingestTo posts NDJSON lines to checkout/env.
func (ah *alertHarness) ingestTo(env string, lines ...string) {
	ah.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ah.url+"/api/v1/ingest?service=checkout&env="+env,
		strings.NewReader(strings.Join(lines, "\n")))
	req.Header.Set("Authorization", "Bearer "+ah.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ah.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ah.t.Fatalf("ingest: status %d", resp.StatusCode)
	}
}

func (ah *alertHarness) alerts(user string) (int, []alertView) {
	ah.t.Helper()
	var out struct {
		Items []alertView `json:"items"`
	}
	code := ah.call(user, http.MethodGet, "/api/v1/alerts", nil, &out)
	return code, out.Items
}

func TestAlertFiresOnIngestedLinesAndResolves(t *testing.T) {
	ah := newAlertHarness(t)
	ctx := context.Background()
	line := `{"level":"error","message":"payment failed for card 4111 1111 1111 1111"}`
	ah.ingest(line, line, `{"level":"info","message":"payment failed"}`)
	ah.engine.Tick(ctx)
	if _, items := ah.alerts("carol"); len(items) != 0 {
		t.Fatalf("alerts after 2 matches = %+v, want none", items)
	}
	ah.ingest(line)
	ah.engine.Tick(ctx)

	code, items := ah.alerts("carol")
	if code != http.StatusOK || len(items) != 1 {
		t.Fatalf("GET /api/v1/alerts = %d, %+v; want one alert", code, items)
	}
	a := items[0]
	if a.Rule != "checkout-payment-errors" || a.State != alert.StateFiring || a.Service != "checkout" ||
		a.Env != "staging" || a.Count != 3 || a.StartedAt == nil || a.EndedAt != nil {
		t.Errorf("alert = %+v", a)
	}
	if !strings.Contains(a.Link, "alert_id="+a.ID) || !strings.Contains(a.Link, "stream=checkout%2Fstaging") {
		t.Errorf("link = %q", a.Link)
	}
	fired := ah.events(audit.Query{Action: "alert.fired"})
	if len(fired) != 1 || fired[0].Details["alert_id"] != a.ID || fired[0].Target.Service != "checkout" {
		t.Fatalf("alert.fired events = %+v", fired)
	}
	rec, _ := ah.audit.Get(ctx, fired[0].ID)
	if b := strings.Join([]string{rec.Reason, rec.Action, toJSON(t, rec.Details)}, " "); strings.Contains(b, "payment failed") || strings.Contains(b, "4111") {
		t.Errorf("alert.fired carries a line: %s", b)
	}

	if kinds := strings.Join(ah.notes.kinds(), ","); !strings.Contains(kinds, "alert.fired") {
		t.Errorf("notifications = %s, want alert.fired", kinds)
	}
	// Alice (an engineer) may not list alerts; the refusal is audited.
	if code, _ := ah.alerts("alice"); code != http.StatusForbidden {
		t.Errorf("alice GET /api/v1/alerts = %d, want 403", code)
	}
	if denied := ah.events(audit.Query{Action: "alerts.read", Outcome: "denied"}); len(denied) != 1 {
		t.Errorf("alerts.read denied events = %d, want 1", len(denied))
	}
	if code := ah.call("", http.MethodGet, "/api/v1/alerts", nil, nil); code != http.StatusUnauthorized {
		t.Errorf("anonymous GET /api/v1/alerts = %d, want 401", code)
	}
	if code := ah.call("carol", http.MethodGet, "/api/v1/alerts?state=bogus", nil, nil); code != http.StatusBadRequest {
		t.Errorf("state=bogus = %d, want 400", code)
	}
	if code := ah.call("carol", http.MethodGet, "/api/v1/alerts/alt_nope", nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown alert = %d, want 404", code)
	}

	ah.clock.Advance(2 * time.Minute)
	ah.engine.Tick(ctx)
	_, items = ah.alerts("carol")
	if len(items) != 1 || items[0].State != alert.StateResolved || items[0].EndedAt == nil {
		t.Fatalf("after the window = %+v, want resolved", items)
	}
	if n := len(ah.events(audit.Query{Action: "alert.resolved"})); n != 1 {
		t.Errorf("alert.resolved events = %d, want 1", n)
	}
}

func putRules(t *testing.T, ah *alertHarness, user, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, ah.url+"/api/v1/alert-rules", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ah.harness.token(user))
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAlertRulesEditValidatesThenSavesAndAudits(t *testing.T) {
	ah := newAlertHarness(t)
	before := ah.engine.Rules().Digest

	code, body := putRules(t, ah, "carol", "- {name: broken, message: '(', window: 1m}\n- {name: z, window: 0s}")
	if code != http.StatusBadRequest || !strings.Contains(body, `"problems"`) || !strings.Contains(body, "field message") ||
		!strings.Contains(body, `rule \"z\"`) || !strings.Contains(body, "alerts.yaml") {
		t.Errorf("bad rules: %d %s", code, body)
	}
	if ah.engine.Rules().Digest != before {
		t.Error("bad rules replaced the running rules")
	}
	code, body = putRules(t, ah, "carol", "- {name: typo, service: chekout, env: prod, window: 1m}")
	if code != http.StatusBadRequest || !strings.Contains(body, `rule \"typo\"`) || !strings.Contains(body, "selects no known stream") {
		t.Errorf("selector matching nothing: %d %s", code, body)
	}
	if code, _ := putRules(t, ah, "alice", "[]"); code != http.StatusForbidden {
		t.Errorf("alice PUT = %d, want 403", code)
	}

	newRules := "- {name: checkout-payment-errors, service: checkout, env: staging, message: payment failed, threshold: 5, window: 1m}\n- {name: slow, message: timeout, window: 5m}\n"
	if code, body := putRules(t, ah, "carol", newRules); code != http.StatusOK {
		t.Fatalf("good rules: %d %s", code, body)
	}
	if got, _ := os.ReadFile(ah.rulesFile); string(got) != newRules {
		t.Errorf("rules file = %q, want the new rules", got)
	}
	evs := ah.events(audit.Query{Action: "alert_rules.changed", Outcome: "success"})
	if len(evs) != 1 {
		t.Fatalf("alert_rules.changed events = %d", len(evs))
	}
	d := evs[0].Details
	if toJSON(t, d["added"]) != `["slow"]` || toJSON(t, d["removed"]) != `["auth-failures"]` ||
		toJSON(t, d["changed"]) != `["checkout-payment-errors"]` || d["digest"] != ah.engine.Rules().Digest {
		t.Errorf("details = %v", d)
	}
	var got map[string]any
	if code := ah.call("carol", http.MethodGet, "/api/v1/alert-rules", nil, &got); code != http.StatusOK || got["source"] != newRules {
		t.Errorf("GET alert-rules = %d %v", code, got)
	}

	// The hot reload: the file changes on disk; a bad edit is refused.
	if err := os.WriteFile(ah.rulesFile, []byte("- {name: x, bogus: 1, window: 1m}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ah.srv.ReloadAlertRules(context.Background()); err == nil {
		t.Error("bad file reloaded")
	}
	if n := len(ah.engine.Rules().Rules); n != 2 {
		t.Errorf("%d rules after a bad reload, want the 2 running", n)
	}
	if err := os.WriteFile(ah.rulesFile, []byte("- {name: x, window: 1m}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ah.srv.ReloadAlertRules(context.Background()); err != nil {
		t.Fatal(err)
	}
	if names := ah.engine.Rules().Names(); len(names) != 1 || names[0] != "x" {
		t.Errorf("rules after reload = %v", names)
	}
	// The Admin page sends the file wrapped in JSON.
	if code := ah.call("carol", http.MethodPut, "/api/v1/alert-rules", map[string]string{"source": "- {name: y, window: 2m}\n"}, nil); code != http.StatusOK {
		t.Errorf("PUT {source} = %d", code)
	}
	if names := ah.engine.Rules().Names(); len(names) != 1 || names[0] != "y" {
		t.Errorf("rules after PUT {source} = %v", names)
	}
	if code := ah.call("carol", http.MethodPut, "/api/v1/alert-rules", map[string]string{"sauce": "x"}, nil); code != http.StatusBadRequest {
		t.Errorf("PUT {sauce} = %d, want 400", code)
	}
}

func TestAuditRuleCountsAggregatedAuthFailures(t *testing.T) {
	ah := newAlertHarness(t)
	ctx := context.Background()
	// The authenticator aggregates failures: one event standing for four,
	// then one more, reach the threshold of five.
	for _, n := range []int{4, 1} {
		if err := ah.srv.RecordAuth(ctx, auth.Event{Action: "auth.failed", Reason: "invalid token", Count: n, RemoteAddr: "192.0.2.1"}); err != nil {
			t.Fatal(err)
		}
	}
	ah.engine.Tick(ctx)
	_, items := ah.alerts("carol")
	if len(items) != 1 || items[0].Rule != "auth-failures" || items[0].Count != 5 {
		t.Fatalf("alerts = %+v, want auth-failures with count 5", items)
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

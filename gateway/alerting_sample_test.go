package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/alert/alertmanagertest"
	"github.com/loggate/loggate/gateway/audit"
)

const sampleRules = `
- name: checkout-errors
  service: checkout
  env: "*"
  level: error
  message: payment failed
  threshold: 2
  window: 1m
  sample: true
`

// A rule asks for a sample line; the default policy lets staging alerts
// keep it and never prod ones. The prod line must not reach the alert
// API, the webhook payload, Alertmanager or the audit trail; the staging
// one reaches readers and receivers redacted, and the decision of each is
// in its alert.fired event.
func TestAlertSampleOnlyWherePolicyAllows(t *testing.T) {
	base := alertmanagertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var am *alert.Alertmanager
	ah := newAlertHarnessWith(t, sampleRules, func(c *Config) {
		var err error
		am, err = alert.NewAlertmanager(alert.AlertmanagerConfig{URLs: []string{base}, Store: c.AlertStore.(*alert.Store)})
		if err != nil {
			t.Fatal(err)
		}
		c.AlertReceivers = []AlertReceiver{am}
	})
	go am.Run(ctx)

	staging := `{"level":"error","message":"payment failed: staging-marker token=sk_live_abcdefghijklmnop1234"}`
	prod := `{"level":"error","message":"payment failed: prod-marker for customer 42"}`
	ah.ingestTo("staging", staging, staging)
	ah.ingestTo("prod", prod, prod)
	ah.engine.Tick(ctx)

	_, items := ah.alerts("carol")
	byEnv := map[string]alertView{}
	for _, a := range items {
		byEnv[a.Env] = a
	}
	if len(items) != 2 || byEnv["staging"].State != alert.StateFiring || byEnv["prod"].State != alert.StateFiring {
		t.Fatalf("alerts = %+v, want staging and prod firing", items)
	}
	if s := byEnv["staging"].Sample; !strings.Contains(s, "staging-marker") || strings.Contains(s, "sk_live_abcdefghijklmnop1234") {
		t.Errorf("staging sample = %q, want the redacted line", s)
	}
	if s := byEnv["prod"].Sample; s != "" {
		t.Errorf("prod sample = %q, want none", s)
	}
	var one alertView
	if code := ah.call("carol", http.MethodGet, "/api/v1/alerts/"+byEnv["prod"].ID, nil, &one); code != http.StatusOK || one.Sample != "" {
		t.Errorf("GET prod alert = %d, sample %q", code, one.Sample)
	}

	for _, ev := range ah.events(audit.Query{Action: "alert.fired"}) {
		rec, _ := ah.audit.Get(ctx, ev.ID)
		if b := toJSON(t, rec.Details); strings.Contains(b, "marker") {
			t.Errorf("alert.fired carries the line: %s", b)
		}
		s, _ := ev.Details["sample"].(map[string]any)
		want := ev.Target.Env == "staging"
		if s == nil || s["allowed"] != want || s["decision_id"] == "" {
			t.Errorf("alert.fired on %s: sample decision = %v, want allowed=%v", ev.Target.Env, s, want)
		}
	}
	ah.notes.mu.Lock()
	for _, n := range ah.notes.notes {
		b := toJSON(t, n.Payload)
		if strings.Contains(b, "prod-marker") {
			t.Errorf("%s notification carries the prod line: %s", n.Kind, b)
		}
		if strings.Contains(b, `"env":"staging"`) && !strings.Contains(b, "staging-marker") {
			t.Errorf("%s notification lacks the allowed staging sample: %s", n.Kind, b)
		}
	}
	ah.notes.mu.Unlock()

	alertmanagertest.WaitFor(t, 15*time.Second, "both alerts in Alertmanager", func() bool {
		return len(alertmanagertest.Active(t, base, "checkout-errors")) == 2
	})
	for _, a := range alertmanagertest.Active(t, base, "checkout-errors") {
		got := a.Annotations["sample"]
		switch a.Labels["env"] {
		case "staging":
			if !strings.Contains(got, "staging-marker") || strings.Contains(got, "sk_live_abcdefghijklmnop1234") {
				t.Errorf("Alertmanager staging sample = %q", got)
			}
		case "prod":
			if got != "" || strings.Contains(toJSON(t, a), "prod-marker") {
				t.Errorf("Alertmanager prod alert carries the line: %v", a)
			}
		}
	}
}

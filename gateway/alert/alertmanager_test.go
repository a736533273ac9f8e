package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/alert/alertmanagertest"
	"github.com/loggate/loggate/gateway/logs"
)

func TestRealAlertmanagerSeesFiringThenResolved(t *testing.T) {
	base := alertmanagertest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := OpenStore(ctx, filepath.Join(t.TempDir(), "alerts.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	am, err := NewAlertmanager(AlertmanagerConfig{URLs: []string{base}, Store: st,
		GeneratorURL: func(a Alert) string { return "http://loggate.test/?alert_id=" + a.ID }})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := Parse("rules.yaml", []byte(`
- name: checkout-payment-errors
  service: checkout
  env: staging
  level: error
  message: payment failed
  threshold: 3
  window: 2s
  severity: critical
  group_by: [region]
  labels: {team: payments}
`))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(EngineConfig{Interval: 100 * time.Millisecond, Sink: SinkFunc(func(ctx context.Context, ch Change) {
		if err := st.Save(ctx, ch.Alert); err != nil {
			t.Error(err)
		}
		if err := am.Enqueue(ctx, ch.Alert); err != nil {
			t.Error(err)
		}
	})})
	e.SetRules(rs)
	go e.Run(ctx)
	go am.Run(ctx)

	bad := logs.Entry{Service: "checkout", Env: "staging", Level: "error", Message: "payment failed: declined",
		Attrs: map[string]string{"region": "eu"}}
	e.ObserveEntries([]logs.Entry{bad, bad, bad})
	var got []alertmanagertest.Alert
	alertmanagertest.WaitFor(t, 10*time.Second, "the alert in Alertmanager", func() bool {
		got = alertmanagertest.Active(t, base, "checkout-payment-errors")
		return len(got) == 1
	})
	a := got[0]
	for k, want := range map[string]string{"alertname": "checkout-payment-errors", "service": "checkout", "env": "staging",
		"severity": "critical", "team": "payments", "region": "eu"} {
		if a.Labels[k] != want {
			t.Errorf("label %s = %q, want %q (labels %v)", k, a.Labels[k], want, a.Labels)
		}
	}
	if a.Annotations["count"] != "3" || a.Annotations["window"] != "2s" {
		t.Errorf("annotations = %v", a.Annotations)
	}
	if a.GeneratorURL == "" || a.Status.State != "active" {
		t.Errorf("generatorURL %q, state %q", a.GeneratorURL, a.Status.State)
	}
	// No more lines: the window empties, the rule resolves, and
	// Alertmanager drops it from its active alerts.
	alertmanagertest.WaitFor(t, 15*time.Second, "the alert resolved in Alertmanager", func() bool {
		return len(alertmanagertest.Active(t, base, "checkout-payment-errors")) == 0
	})
	if am.Delivered() < 2 {
		t.Errorf("delivered = %d, want firing and resolved", am.Delivered())
	}
}

func TestOutboxRetriesAndSurvivesRestartWithoutBlocking(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "alerts.db")
	var up atomic.Bool
	var received atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var list []json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&list)
		received.Add(int64(len(list)))
	}))
	defer srv.Close()
	clock := &fakeClock{t: time.Now()}
	st, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	am, _ := NewAlertmanager(AlertmanagerConfig{URLs: []string{srv.URL}, Store: st, Now: clock.Now, MaxPending: 2})
	now := clock.Now()
	for i := range 3 {
		if err := am.Enqueue(ctx, Alert{ID: fmt.Sprint("a", i), Rule: "r", State: StateFiring, StartedAt: &now}); err != nil {
			t.Fatal(err)
		}
	}
	if am.Dropped() != 1 {
		t.Errorf("dropped = %d, want 1 (outbox bound 2)", am.Dropped())
	}
	am.deliverDue(ctx)
	if am.Failed() != 1 || received.Load() != 0 {
		t.Fatalf("failed = %d, received = %d", am.Failed(), received.Load())
	}
	st.Close()

	// A restart: the rows are still there, retried after the backoff.
	st, err = OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	am, _ = NewAlertmanager(AlertmanagerConfig{URLs: []string{srv.URL}, Store: st, Now: clock.Now})
	up.Store(true)
	am.deliverDue(ctx)
	if received.Load() != 0 {
		t.Fatal("retried before the backoff")
	}
	clock.Advance(2 * time.Second)
	am.deliverDue(ctx)
	if received.Load() != 2 {
		t.Fatalf("received %d alerts after restart, want 2", received.Load())
	}
	if n, _ := am.Pending(ctx); n != 0 {
		t.Errorf("pending = %d after delivery", n)
	}
}

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/notify"
)

// TestServeSendsSignedWebhooks runs serve with --webhook-url and checks a
// request's notification arrives signed, and the attempt is counted.
func TestServeSendsSignedWebhooks(t *testing.T) {
	type hook struct {
		h    http.Header
		body []byte
	}
	got := make(chan hook, 10)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- hook{r.Header.Clone(), b}
	}))
	defer rc.Close()
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, []byte("s3cret-webhook-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--webhook-url", rc.URL, "--webhook-secret-file", secretFile,
		"--webhook-events", "request.created,request.break_glass")

	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", g.token("bob"), map[string]any{"service": "checkout", "env": "prod",
		"duration": "10m", "reason": "prod is down, paging", "break_glass": true}, &req); code != http.StatusCreated {
		t.Fatalf("break-glass request: status %d", code)
	}
	select {
	case h := <-got:
		if err := notify.Verify("s3cret-webhook-key", h.h.Get("webhook-id"), h.h.Get("webhook-timestamp"),
			h.h.Get("webhook-signature"), h.body, time.Now(), time.Minute); err != nil {
			t.Errorf("signature: %v", err)
		}
		var ev struct {
			Type string `json:"type"`
			Data struct {
				Request struct {
					ID string `json:"id"`
				} `json:"request"`
			} `json:"data"`
		}
		if err := json.Unmarshal(h.body, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type != "request.break_glass" || ev.Data.Request.ID != req.ID {
			t.Errorf("got %s about %s, want request.break_glass about %s", ev.Type, ev.Data.Request.ID, req.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook within 10s")
	}
	var metrics string
	if !within(5*time.Second, 50*time.Millisecond, func() bool {
		resp, err := http.Get(g.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		metrics = string(b)
		return strings.Contains(metrics, `loggate_notification_attempts_total{outcome="delivered"} 1`)
	}) {
		t.Fatalf("metrics do not count the delivered attempt:\n%s", grepLines(metrics, "notification"))
	}
}

func TestServeRejectsUnknownWebhookEvent(t *testing.T) {
	err := runServe(t.Context(), []string{"--dev", "--listen", "127.0.0.1:0", "--data", t.TempDir(),
		"--webhook-url", "http://127.0.0.1:1/", "--webhook-events", "request.created,grant.exploded"},
		func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "grant.exploded") {
		t.Errorf("serve with an unknown webhook event = %v, want an error naming it", err)
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

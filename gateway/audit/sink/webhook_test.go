package sink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// The receiver recomputes the HMAC itself (not with SignWebhook), rejects
// the first attempt with 503, and deduplicates on the id it finds in the
// header and the body.
func TestWebhookSignedDelivery(t *testing.T) {
	secret := []byte("0123456789abcdef-test-secret")
	var mu sync.Mutex
	seen := map[string]int{}
	calls := 0
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return
		}
		id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
		if r.Header.Get("webhook-signature") != want {
			bad = append(bad, "signature mismatch for "+id)
		}
		if sec, err := strconv.ParseInt(ts, 10, 64); err != nil || time.Since(time.Unix(sec, 0)) > time.Minute {
			bad = append(bad, "bad timestamp "+ts)
		}
		if err := VerifyWebhook(secret, r.Header, body, time.Now(), 5*time.Minute); err != nil {
			bad = append(bad, "VerifyWebhook: "+err.Error())
		}
		if VerifyWebhook([]byte("another-secret-0123456789"), r.Header, body, time.Now(), 5*time.Minute) == nil {
			bad = append(bad, "VerifyWebhook accepted the wrong secret")
		}
		if r.Header.Get("Content-Type") != "application/json" {
			bad = append(bad, "content type "+r.Header.Get("Content-Type"))
		}
		bodyID, _ := checkLine(t, body)
		if bodyID != id {
			bad = append(bad, "body id "+bodyID+" != header id "+id)
		}
		seen[bodyID]++
	}))
	defer srv.Close()

	s := openStore(t)
	evs := appendEvents(t, s, 5)
	wh, err := NewWebhook(WebhookConfig{URL: srv.URL + "/audit", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	runUntil(t, newRunner(t, s, wh, t.TempDir(), nil), 5)

	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
	for _, ev := range evs {
		if seen[ev.ID] == 0 {
			t.Errorf("event %s not received", ev.ID)
		}
	}
}

func TestParseWebhookSecret(t *testing.T) {
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"raw", "  a-long-enough-secret\n", "a-long-enough-secret", true},
		{"whsec", "whsec_" + base64.StdEncoding.EncodeToString([]byte("sixteen-bytes-ok")), "sixteen-bytes-ok", true},
		{"short", "short", "", false},
		{"whsec not base64", "whsec_!!!!!!!!!!!!!!!!!!!!", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWebhookSecret([]byte(tt.in))
			if (err == nil) != tt.ok || string(got) != tt.want {
				t.Errorf("ParseWebhookSecret(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestNewWebhookRejects(t *testing.T) {
	for _, cfg := range []WebhookConfig{
		{URL: "ftp://x/", Secret: []byte("0123456789abcdef")},
		{URL: "http://x/", Secret: []byte("short")},
	} {
		if _, err := NewWebhook(cfg); err == nil {
			t.Errorf("NewWebhook(%q) accepted", cfg.URL)
		}
	}
}

package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSignatureVerifies(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	rc := newReceiver(t)
	n := open(t, quick(outboxPath(t), Target{URL: rc.URL, Secret: secret}))
	if err := n.Notify(context.Background(), KindRequestCreated, requestPayload("INC-1 checkout errors")); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	id, ts, sig := got.Header.Get("webhook-id"), got.Header.Get("webhook-timestamp"), got.Header.Get("webhook-signature")

	// Computed here independently of Sign: HMAC-SHA256 over id.timestamp.body.
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id + "." + ts + "." + string(got.Body)))
	if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); sig != want {
		t.Errorf("webhook-signature = %q, want %q", sig, want)
	}
	if err := Verify(secret, id, ts, sig, got.Body, time.Now(), 5*time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	tampered := append([]byte(nil), got.Body...)
	tampered[len(tampered)-2] ^= 1
	if err := Verify(secret, id, ts, sig, tampered, time.Now(), 5*time.Minute); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify(tampered body) = %v, want ErrBadSignature", err)
	}
	if err := Verify(secret, id, ts, sig, got.Body, time.Now().Add(time.Hour), 5*time.Minute); err == nil {
		t.Error("Verify accepted a timestamp an hour old")
	}

	var ev struct {
		ID   string         `json:"id"`
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(got.Body, &ev); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if ev.Type != KindRequestCreated || ev.ID != id || ev.Data["request"] == nil {
		t.Errorf("envelope = %+v, want type %s, id %s and the request", ev, KindRequestCreated, id)
	}
	if ct := got.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestUnsignedWithoutSecret(t *testing.T) {
	rc := newReceiver(t)
	n := open(t, quick(outboxPath(t), Target{URL: rc.URL}))
	if err := n.Notify(context.Background(), KindGrantRevoked, map[string]any{"grant": map[string]any{"id": "grt_1"}}); err != nil {
		t.Fatal(err)
	}
	if got := rc.next(t); got.Header.Get("webhook-signature") != "" {
		t.Errorf("signed without a secret: %q", got.Header.Get("webhook-signature"))
	}
}

func TestRetryAfterServerErrorThenSuccess(t *testing.T) {
	rc := newReceiver(t)
	var ids []string
	rc.setAnswer(func(n int, r *http.Request) (int, map[string]string) {
		ids = append(ids, r.Header.Get("webhook-id"))
		if n == 1 {
			return http.StatusInternalServerError, nil
		}
		return http.StatusOK, nil
	})
	at := newAttempts()
	cfg := quick(outboxPath(t), Target{URL: rc.URL, Secret: "s3cret"})
	cfg.OnAttempt = at.hook
	n := open(t, cfg)
	if err := n.Notify(context.Background(), KindRequestApproved, requestPayload("x")); err != nil {
		t.Fatal(err)
	}
	rc.next(t)
	at.wait(t, "request.approved delivered")
	if got, want := at.list(), []string{"request.approved retrying", "request.approved delivered"}; !slices.Equal(got, want) {
		t.Errorf("attempts = %q, want %q", got, want)
	}
	rc.mu.Lock()
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("webhook-id per attempt = %q, want the same id twice (receivers deduplicate on it)", ids)
	}
	rc.mu.Unlock()
	if p, err := n.Pending(context.Background()); err != nil || p != 0 {
		t.Errorf("Pending = %d, %v; want 0", p, err)
	}
}

func TestRetryAfterHeaderIsHonoured(t *testing.T) {
	rc := newReceiver(t)
	var first time.Time
	rc.setAnswer(func(n int, r *http.Request) (int, map[string]string) {
		if n == 1 {
			first = time.Now()
			return http.StatusTooManyRequests, map[string]string{"Retry-After": "1"}
		}
		return http.StatusOK, nil
	})
	n := open(t, quick(outboxPath(t), Target{URL: rc.URL}))
	if err := n.Notify(context.Background(), KindGrantExpiring, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	got := rc.next(t)
	// The backoff alone would retry after 10-20ms; Retry-After says 1s.
	if gap := got.At.Sub(first); gap < time.Second {
		t.Errorf("retried %s after a Retry-After: 1 answer, want at least 1s", gap)
	}
}

// reserveAddr returns a loopback address nobody listens on.
func reserveAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestReceiverDownAcrossRestart(t *testing.T) {
	path := outboxPath(t)
	addr := reserveAddr(t)
	target := Target{URL: "http://" + addr + "/hook", Secret: "s3cret"}
	at := newAttempts()
	cfg := quick(path, target)
	cfg.OnAttempt = at.hook
	n1, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	kinds := []string{KindRequestCreated, KindBreakGlass, KindGrantRevoked}
	for _, k := range kinds {
		if err := n1.Notify(context.Background(), k, requestPayload("INC-7")); err != nil {
			t.Fatal(err)
		}
	}
	at.wait(t, KindBreakGlass+" retrying")
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n1.Notify(context.Background(), KindRequestCreated, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Notify after Close = %v, want ErrClosed", err)
	}

	// The receiver comes up only now, on the address the messages name.
	var ln net.Listener
	for i := 0; ; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("cannot listen on %s again: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc := &receiver{got: make(chan received, 100)}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(rc.serve))
	rc.Listener.Close()
	rc.Listener = ln
	rc.Start()
	t.Cleanup(rc.Close)

	n2 := open(t, quick(path, target))
	var got []string
	for range kinds {
		var ev struct {
			Type string `json:"type"`
		}
		r := rc.next(t)
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			t.Fatal(err)
		}
		if err := Verify("s3cret", r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
			r.Header.Get("webhook-signature"), r.Body, time.Now(), time.Minute); err != nil {
			t.Errorf("redelivered %s: %v", ev.Type, err)
		}
		got = append(got, ev.Type)
	}
	slices.Sort(got)
	want := slices.Clone(kinds)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("delivered after restart %q, want %q", got, want)
	}
	rc.none(t, 200*time.Millisecond)
	if p, err := n2.Pending(context.Background()); err != nil || p != 0 {
		t.Errorf("Pending = %d, %v; want 0", p, err)
	}
}

func TestKindsFilter(t *testing.T) {
	security, all := newReceiver(t), newReceiver(t)
	n := open(t, quick(outboxPath(t),
		Target{URL: security.URL, Kinds: []string{KindBreakGlass, KindGrantRevoked}},
		Target{URL: all.URL}))
	ctx := context.Background()
	for _, k := range []string{KindRequestCreated, KindBreakGlass, KindRequestDenied} {
		if err := n.Notify(ctx, k, requestPayload("INC-1")); err != nil {
			t.Fatal(err)
		}
	}
	typeOf := func(r received) string {
		var ev struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(r.Body, &ev)
		return ev.Type
	}
	if got := typeOf(security.next(t)); got != KindBreakGlass {
		t.Errorf("security target got %s, want only %s", got, KindBreakGlass)
	}
	security.none(t, 300*time.Millisecond)
	var got []string
	for range 3 {
		got = append(got, typeOf(all.next(t)))
	}
	slices.Sort(got)
	if want := []string{KindBreakGlass, KindRequestCreated, KindRequestDenied}; !slices.Equal(got, want) {
		t.Errorf("catch-all target got %q, want %q", got, want)
	}
}

// A receiver that hangs on ordinary messages must not hold back a
// break-glass one.
func TestBreakGlassIsNotHeldBack(t *testing.T) {
	release := make(chan struct{})
	var bg = make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Type string `json:"type"`
		}
		_ = json.NewDecoder(r.Body).Decode(&ev)
		if ev.Type == KindBreakGlass {
			bg <- time.Now()
			return
		}
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	cfg := quick(outboxPath(t), Target{URL: srv.URL})
	cfg.MaxConcurrent = 1
	cfg.Client = &http.Client{Timeout: 5 * time.Second}
	n := open(t, cfg)
	ctx := context.Background()
	for range 3 {
		if err := n.Notify(ctx, KindRequestCreated, requestPayload("INC-1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Notify(ctx, KindBreakGlass, requestPayload("prod down")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bg:
	case <-time.After(3 * time.Second):
		t.Fatal("break-glass notification waited behind a hung receiver")
	}
}

func TestCloseDrainsWhatIsDue(t *testing.T) {
	rc := newReceiver(t)
	n, err := New(context.Background(), quick(outboxPath(t), Target{URL: rc.URL}))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := n.Notify(context.Background(), KindRequestCreated, requestPayload("INC-1")); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(rc.got); got != 5 {
		t.Errorf("delivered %d of 5 before Close returned", got)
	}
}

func TestAbandonedAfterMaxAge(t *testing.T) {
	rc := newReceiver(t)
	rc.setAnswer(func(int, *http.Request) (int, map[string]string) { return http.StatusBadGateway, nil })
	at := newAttempts()
	cfg := quick(outboxPath(t), Target{URL: rc.URL})
	cfg.MaxAge = 50 * time.Millisecond
	cfg.OnAttempt = at.hook
	n := open(t, cfg)
	if err := n.Notify(context.Background(), KindGrantExpiring, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	at.wait(t, KindGrantExpiring+" abandoned")
	if p, _ := n.Pending(context.Background()); p != 0 {
		t.Errorf("Pending = %d after abandoning, want 0", p)
	}
	left, err := countRows(context.Background(), n.box.(*sqliteOutbox).db, "state = 'abandoned'")
	if err != nil || left != 1 {
		t.Errorf("abandoned rows = %d, %v; want 1 kept for inspection", left, err)
	}
}

func TestOutboxHoldsNoURLOrSecret(t *testing.T) {
	path := outboxPath(t)
	n := open(t, quick(path, Target{URL: "http://127.0.0.1:1/services/T000/B000/XXXXTOKEN", Secret: "topsecretvalue"}))
	if err := n.Notify(context.Background(), KindRequestCreated, requestPayload("INC-1")); err != nil {
		t.Fatal(err)
	}
	var targets []string
	rs, err := n.box.(*sqliteOutbox).db.Query(`SELECT target FROM outbox`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var s string
		_ = rs.Scan(&s)
		targets = append(targets, s)
	}
	rs.Close()
	for _, s := range targets {
		if strings.Contains(s, "TOKEN") || strings.Contains(s, "topsecret") {
			t.Errorf("outbox names a target by %q", s)
		}
	}
}

func TestNewRejectsBadTargets(t *testing.T) {
	for name, tg := range map[string]Target{
		"relative URL":   {URL: "/hook"},
		"ftp URL":        {URL: "ftp://example.com/"},
		"unknown format": {URL: "https://example.com/", Format: "xml"},
		"bad whsec":      {URL: "https://example.com/", Secret: "whsec_***"},
	} {
		t.Run(name, func(t *testing.T) {
			if n, err := New(context.Background(), Config{Path: outboxPath(t), Targets: []Target{tg}}); err == nil {
				n.Close()
				t.Errorf("New accepted %+v", tg)
			} else if strings.Contains(err.Error(), "example.com") {
				t.Errorf("error %q repeats the URL", err)
			}
		})
	}
	if _, err := New(context.Background(), Config{}); err == nil {
		t.Error("New accepted a Config without Path")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-3", 0},
		{"120", 2 * time.Minute},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"99999999999", 7 * 24 * time.Hour},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	lo, hi := 100*time.Millisecond, 2*time.Second
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 10: 2 * time.Second, 1000: 2 * time.Second} {
		for range 50 {
			if got := backoff(attempt, lo, hi); got < want/2 || got > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
}

func BenchmarkNotify(b *testing.B) {
	n, err := New(context.Background(), Config{Path: b.TempDir() + "/outbox.db",
		Targets: []Target{{URL: "http://127.0.0.1:1/", Secret: "s"}}, MinBackoff: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	p := requestPayload("INC-1 checkout errors")
	b.ResetTimer()
	for b.Loop() {
		if err := n.Notify(context.Background(), KindRequestCreated, p); err != nil {
			b.Fatal(err)
		}
	}
}

package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// received is one request a test receiver got.
type received struct {
	Header http.Header
	Body   []byte
	At     time.Time
}

// receiver is an httptest webhook receiver whose answer a test controls.
type receiver struct {
	*httptest.Server
	got chan received

	mu     sync.Mutex
	answer func(n int, r *http.Request) (status int, header map[string]string) // guarded by mu
	n      int                                                                 // requests so far; guarded by mu
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan received, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.n++
	n, answer := rc.n, rc.answer
	rc.mu.Unlock()
	status := http.StatusNoContent
	if answer != nil {
		var h map[string]string
		status, h = answer(n, r)
		for k, v := range h {
			w.Header().Set(k, v)
		}
	}
	// Recorded before answering, so a test that waits for the sender sees it.
	if status >= 200 && status < 300 {
		rc.got <- received{Header: r.Header.Clone(), Body: body, At: time.Now()}
	}
	w.WriteHeader(status)
}

func (rc *receiver) setAnswer(f func(n int, r *http.Request) (int, map[string]string)) {
	rc.mu.Lock()
	rc.answer = f
	rc.mu.Unlock()
}

// next waits for the next delivered request.
func (rc *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-rc.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook delivered within 10s")
	}
	return received{}
}

// none asserts nothing more arrives within d.
func (rc *receiver) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case r := <-rc.got:
		t.Fatalf("unexpected delivery: %s", r.Body)
	case <-time.After(d):
	}
}

// attempts records OnAttempt calls.
type attempts struct {
	mu  sync.Mutex
	got []string // "kind outcome"
	ch  chan string
}

func newAttempts() *attempts { return &attempts{ch: make(chan string, 100)} }

func (a *attempts) hook(kind, outcome string) {
	a.mu.Lock()
	a.got = append(a.got, kind+" "+outcome)
	a.mu.Unlock()
	a.ch <- kind + " " + outcome
}

func (a *attempts) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.got...)
}

func (a *attempts) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-a.ch:
			if got == want {
				return
			}
		case <-deadline:
			t.Fatalf("no attempt %q within 10s; got %q", want, a.list())
		}
	}
}

// quick is a Config with test-sized delays.
func quick(path string, targets ...Target) Config {
	return Config{Path: path, Targets: targets, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		DrainTimeout: time.Second, Client: &http.Client{Timeout: 2 * time.Second}}
}

func open(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func outboxPath(t *testing.T) string { return filepath.Join(t.TempDir(), "outbox.db") }

// requestPayload is shaped like the gateway's request view.
func requestPayload(reason string) map[string]any {
	return map[string]any{"request": map[string]any{
		"id": "req_abc", "state": "pending", "service": "checkout", "env": "prod", "duration": "1h0m0s",
		"reason": reason, "break_glass": false,
		"requester": map[string]any{"id": "https://idp|alice", "name": "Alice Example", "email": "alice@example.com"},
		"decision":  map[string]any{"approvals_required": 1, "approver_groups": []string{"sre-leads"}},
		"approvals": []any{},
	}}
}

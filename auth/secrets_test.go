package auth

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestNoSecretsInLogsOrEvents drives logins, refreshes and refused tokens
// with debug logging on, then looks for every secret in the log text and the
// audit events.
func TestNoSecretsInLogsOrEvents(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e.op.idTTL = 10 * time.Minute
	e.login(e.browser, "/")
	cookie := e.sessionCookie(e.browser).Value
	e.clk.Advance(15 * time.Minute)
	if _, status := e.me(e.browser); status != http.StatusOK {
		t.Fatalf("refresh: %d", status)
	}
	good := e.op.mint(baseClaims())
	bad := e.op.mint(with(baseClaims(), "aud", "x"))
	for _, tok := range []string{good, bad, "not-a-jwt-but-secret"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		e.a.Authenticate(r)
	}
	e.op.mu.Lock()
	secrets := []string{good, bad, "not-a-jwt-but-secret", cookie, e.cfg.ClientSecret, string(testSessionKey)}
	for rt := range e.op.refresh {
		secrets = append(secrets, rt)
	}
	e.op.mu.Unlock()
	e.a.Close()
	var events strings.Builder
	for _, ev := range e.rec.events {
		fmt.Fprintf(&events, "%+v %+v\n", ev, ev.Identity)
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log output contains a secret (%.12s...)", s)
		}
		if strings.Contains(events.String(), s) {
			t.Errorf("audit events contain a secret (%.12s...)", s)
		}
	}
	if !strings.Contains(logs.String(), "auth failed") {
		t.Errorf("debug log has no failure lines: the test did not exercise logging")
	}
	if len(e.rec.events) < 4 {
		t.Errorf("only %d events: the test did not exercise enough", len(e.rec.events))
	}
}

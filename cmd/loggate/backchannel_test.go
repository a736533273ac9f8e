package main

import (
	"crypto/rand"
	"encoding/hex"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestBackchannelLogout: the provider ends alice's sessions with a signed
// logout token (OpenID Connect Back-Channel Logout 1.0), signed by a key it
// publishes. Every malformed, foreign, stale or replayed token is refused
// with 400 and its reason, ends nothing, and is audited as auth.failed; the
// valid one ends alice's sessions and the tail her browser opened (4007),
// leaves bob's alone, and is audited as auth.logout by: provider.
func TestBackchannelLogout(t *testing.T) {
	g := startGateway(t)
	idp := g.r.IDP
	carol := g.token("carol")

	alice := newWebClient(t, g.url, nil)
	alice.login("/", "alice")
	bob := newWebClient(t, g.url, nil)
	bob.login("/", "bob")
	_, me := alice.me()
	grant := alice.stagingGrant("alice", "10m", "backchannel test", http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {g.url}})
	tc := sessionTail(t, g, alice, grant)

	now := time.Now()
	claims := func(change map[string]any) map[string]any {
		jti := make([]byte, 12)
		rand.Read(jti)
		c := map[string]any{"iss": idp.Issuer(), "aud": devClientID, "sub": "dev-alice", "iat": now.Unix(),
			"exp": now.Add(2 * time.Minute).Unix(), "jti": hex.EncodeToString(jti),
			"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
		maps.Copy(c, change)
		for k, v := range change {
			if v == nil {
				delete(c, k)
			}
		}
		return c
	}
	sign := func(c map[string]any) string {
		t.Helper()
		tok, err := idp.SignIDToken(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	post := func(tok string) (int, map[string]string) {
		t.Helper()
		resp, err := http.PostForm(g.url+"/auth/backchannel-logout", url.Values{"logout_token": {tok}})
		return jsonAnswer(t, resp, err)
	}

	valid := sign(claims(nil))
	for _, tt := range []struct {
		name, token, reason string
	}{
		{"with a nonce", sign(claims(map[string]any{"nonce": "n"})), "logout_token"},
		{"without the events claim", sign(claims(map[string]any{"events": nil})), "logout_token"},
		{"with an events claim for something else", sign(claims(map[string]any{"events": map[string]any{"urn:other": map[string]any{}}})), "logout_token"},
		{"without jti", sign(claims(map[string]any{"jti": nil})), "logout_token"},
		{"without sub or sid", sign(claims(map[string]any{"sub": nil})), "logout_token"},
		{"expired", sign(claims(map[string]any{"exp": now.Add(-5 * time.Minute).Unix()})), "expired"},
		{"issued long ago", sign(claims(map[string]any{"iat": now.Add(-time.Hour).Unix()})), "expired"},
		{"for another client", sign(claims(map[string]any{"aud": "other-app"})), "wrong_audience"},
		{"from another issuer", sign(claims(map[string]any{"iss": "https://evil.example"})), "wrong_issuer"},
		{"signed by an unknown key", foreignSigned(t, "not-published", claims(nil)), "unknown_key"},
		{"unsigned", unsignedJWT("none", claims(nil)), "alg_none"},
		{"for an unknown session", sign(claims(map[string]any{"sub": "dev-nobody"})), "unknown_session"},
		{"empty", "", "malformed"},
	} {
		if status, out := post(tt.token); status != http.StatusBadRequest || out["reason"] != tt.reason || out["error"] != "invalid_request" {
			t.Errorf("logout token %s: %d %v, want 400 invalid_request with reason %s", tt.name, status, out, tt.reason)
		}
	}
	if status, _ := alice.me(); status != http.StatusOK {
		t.Fatalf("a refused logout token ended alice's session: /me = %d", status)
	}

	if status, out := post(valid); status != http.StatusOK {
		t.Fatalf("valid logout token: %d %v, want 200", status, out)
	}
	if _, end, code := tc.next(0, 10*time.Second); code != 4007 || end["reason"] != "session_ended" {
		t.Errorf("alice's tail after the provider logged her out: close %d, end %v; want 4007 session_ended", code, end)
	}
	if status, _ := alice.me(); status != http.StatusUnauthorized {
		t.Errorf("alice after back-channel logout: /me = %d, want 401", status)
	}
	if status, _ := bob.me(); status != http.StatusOK {
		t.Errorf("bob after alice's back-channel logout: /me = %d, want 200", status)
	}
	if status, out := post(valid); status != http.StatusBadRequest || out["reason"] != "replay" {
		t.Errorf("replayed logout token: %d %v, want 400 replay", status, out)
	}

	logouts, _ := g.auditAs(carol, "auth.logout")
	provider := 0
	for _, e := range logouts {
		if e.Details["by"] == "provider" && strings.HasSuffix(e.Details["user_id"].(string), "|dev-alice") {
			provider++
		}
	}
	if provider != 1 {
		t.Errorf("auth.logout by provider for alice: %d events, want 1 (%+v)", provider, logouts)
	}
	reasons := failedReasons(mustAudit(t, g, carol, "auth.failed"))
	for _, want := range []string{"logout_token", "expired", "wrong_audience", "wrong_issuer", "unknown_key", "alg_none", "unknown_session", "replay", "malformed"} {
		if reasons[want] == 0 {
			t.Errorf("no auth.failed with reason %s (got %v)", want, reasons)
		}
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// These tests drive identity end to end against `loggate serve` as main
// wires it: the development provider's real login form, cookies in a jar,
// bearer tokens on the wire, and the audit trail read back through the API.

// TestIdentityBrowserLoginCSRFLogout is a full browser sign-in through the
// provider's form, the CSRF rules on a state-changing call, and sign-out.
func TestIdentityBrowserLoginCSRFLogout(t *testing.T) {
	g := startGateway(t)
	carol := g.token("carol")
	c := newWebClient(t, g.url, nil)

	resp := c.login("/inbox", "alice")
	if loc := resp.Header.Get("Location"); loc != "/inbox" {
		t.Errorf("after login Location = %q, want /inbox", loc)
	}
	sc := setCookie(resp, "loggate_session")
	if sc == nil {
		t.Fatalf("callback set no session cookie (cookies: %s)", cookieNames(resp))
	}
	if !sc.HttpOnly || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.Secure {
		t.Errorf("session cookie HttpOnly=%v SameSite=%v Path=%q Secure=%v, want HttpOnly, Lax, /, not Secure over plain HTTP",
			sc.HttpOnly, sc.SameSite, sc.Path, sc.Secure)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("callback Cache-Control = %q, want no-store", got)
	}
	if r, _ := c.do("GET", "/inbox", nil, nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET /inbox after login: %d", r.StatusCode)
	}
	status, me := c.me()
	if status != http.StatusOK || me.Username != "alice" || me.Via != "session" || me.CSRFToken == "" {
		t.Fatalf("GET /me with the cookie: %d %+v, want alice via session with a csrf_token", status, me)
	}

	body := map[string]any{"service": "checkout", "env": "staging", "duration": "10m", "reason": "identity test"}
	for _, tt := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no CSRF token", nil, http.StatusForbidden},
		{"wrong CSRF token", http.Header{"X-Csrf-Token": {"x" + me.CSRFToken[1:]}}, http.StatusForbidden},
		{"right token, foreign Origin", http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"right token, own Origin", http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {g.url}}, http.StatusCreated},
	} {
		if r, b := c.postJSON("/api/v1/requests", body, tt.header); r.StatusCode != tt.want {
			t.Errorf("%s: POST /api/v1/requests = %d %s, want %d", tt.name, r.StatusCode, b, tt.want)
		}
	}

	// Sign-out is state-changing too: without the token nothing happens.
	form := func(tok string) *strings.Reader { return strings.NewReader(url.Values{"csrf_token": {tok}}.Encode()) }
	formHeader := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {g.url}}
	if r, _ := c.do("POST", "/logout", form(""), formHeader); r.StatusCode != http.StatusForbidden {
		t.Errorf("logout without CSRF token: %d, want 403", r.StatusCode)
	}
	if status, _ := c.me(); status != http.StatusOK {
		t.Fatalf("a refused logout ended the session: /me = %d", status)
	}
	r, _ := c.do("POST", "/logout", form(me.CSRFToken), formHeader)
	cleared := setCookie(r, "loggate_session")
	if r.StatusCode != http.StatusSeeOther || cleared == nil || cleared.MaxAge >= 0 {
		t.Fatalf("logout: %d, session cookie %v, want 303 clearing it", r.StatusCode, cleared)
	}
	// The provider's end-session endpoint sends the browser back home.
	end := r.Header.Get("Location")
	if !strings.HasPrefix(end, g.url+"/dev/oidc/") {
		t.Errorf("logout Location = %q, want the provider's end-session endpoint", end)
	} else if r, _ := c.do("GET", end, nil, nil); r.StatusCode != http.StatusFound || r.Header.Get("Location") != g.url+"/" {
		t.Errorf("end session: %d Location %q, want 302 to %s/", r.StatusCode, r.Header.Get("Location"), g.url)
	}
	if status, _ := c.me(); status != http.StatusUnauthorized {
		t.Errorf("GET /me after logout = %d, want 401", status)
	}

	hasAlice := func(evs []authEvent) bool {
		return slices.ContainsFunc(evs, func(e authEvent) bool { return e.Actor["subject"] == "dev-alice" })
	}
	for _, action := range []string{"auth.login", "auth.logout"} {
		if evs, _ := g.auditAs(carol, action); !hasAlice(evs) {
			t.Errorf("no %s audit event for alice: %+v", action, evs)
		}
	}
	failed, _ := g.auditAs(carol, "auth.failed")
	reasons := failedReasons(failed)
	for _, want := range []string{"csrf", "origin"} {
		if reasons[want] == 0 {
			t.Errorf("no auth.failed event with reason %q; got %v", want, reasons)
		}
	}
	for _, e := range failed {
		if e.SourceAddr != "127.0.0.1" || e.UserAgent == "" {
			t.Errorf("auth.failed %s: source_addr %q user_agent %q, want 127.0.0.1 and the client's agent", e.Reason, e.SourceAddr, e.UserAgent)
		}
	}
}

// TestIdentityOpenRedirect: whatever ?next= says, the browser ends up on the
// gateway's own origin after login.
func TestIdentityOpenRedirect(t *testing.T) {
	g := startGateway(t)
	for _, tt := range []struct{ next, want string }{
		{"//evil.com", "/"},
		{"https://evil.com", "/"},
		{`/\evil.com`, "/"},
		{"/%2F%2Fevil.com", "/"},
		{"/%5Cevil.com", "/"},
		{"///evil.com", "/"},
		{"javascript:alert(1)", "/"},
		{"/inbox/../..//evil.com", "/"},
		{"/requests?state=pending", "/requests?state=pending"},
	} {
		t.Run(tt.next, func(t *testing.T) {
			resp := newWebClient(t, g.url, nil).login(tt.next, "alice")
			if got := resp.Header.Get("Location"); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestIdentityInvalidTokens presents every kind of bad bearer token to the
// running gateway: each is a 401 that says only "invalid token", and each is
// an auth.failed audit event with its reason class (never the token).
func TestIdentityInvalidTokens(t *testing.T) {
	g := startGateway(t)
	carol, alice := g.token("carol"), g.token("alice")
	idp := g.r.IDP
	now := time.Now()
	claims := func(kv ...any) map[string]any {
		c := map[string]any{"iss": idp.Issuer(), "sub": "dev-alice", "aud": devClientID, "azp": devClientID,
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "preferred_username": "alice", "groups": []string{"sre-leads"}}
		for i := 0; i < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	sign := func(c map[string]any) string {
		tok, err := idp.SignIDToken(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if status, _ := g.bearerStatus(sign(claims()), nil); status != http.StatusOK {
		t.Fatalf("control: a well-formed signed token is refused (%d)", status)
	}
	tests := []struct {
		name, token, reason string
	}{
		{"alg none", unsignedJWT("none", claims()), "alg_none"},
		{"symmetric alg", unsignedJWT("HS256", claims()), "bad_signature"},
		{"wrong audience", sign(claims("aud", "someone-else", "azp", "someone-else")), "wrong_audience"},
		{"wrong issuer", sign(claims("iss", "https://evil.example")), "wrong_issuer"},
		{"expired", sign(claims("iat", now.Add(-3*time.Hour).Unix(), "exp", now.Add(-2*time.Hour).Unix())), "expired"},
		{"not yet valid", sign(claims("nbf", now.Add(time.Hour).Unix())), "expired"},
		{"unknown key", foreignSigned(t, "no-such-key", claims()), "unknown_key"},
		{"forged under the real key id", foreignSigned(t, currentKid(t, alice), claims()), "bad_signature"},
		{"garbage", "garbage", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := g.bearerStatus(tt.token, nil)
			var e struct{ Error, Code string }
			if err := json.Unmarshal([]byte(body), &e); err != nil || status != http.StatusUnauthorized || e.Error != "invalid token" {
				t.Fatalf("got %d %s, want 401 with error \"invalid token\"", status, body)
			}
			for _, leak := range []string{tt.reason, "audience", "issuer", "signature", "expired", "key"} {
				if strings.Contains(body, leak) {
					t.Errorf("response body %s says %q", body, leak)
				}
			}
		})
	}
	failed, raw := g.auditAs(carol, "auth.failed")
	reasons := failedReasons(failed)
	for _, tt := range tests {
		if reasons[tt.reason] == 0 {
			t.Errorf("%s: no auth.failed event with reason %q (have %v)", tt.name, tt.reason, reasons)
		}
		if strings.Contains(raw, tt.token) {
			t.Errorf("%s: the audit trail holds the token itself", tt.name)
		}
	}
	for _, e := range failed {
		if h, _ := e.Details["token_hash"].(string); e.count() == 1 && len(h) != 32 {
			t.Errorf("auth.failed %s: token_hash %q, want a 32-hex-digit keyed hash", e.Reason, h)
		}
	}
	// A non-bearer Authorization header is refused the same way.
	req, _ := http.NewRequest("GET", g.url+"/api/v1/me", nil)
	req.SetBasicAuth("alice", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("Basic auth: %d, want 401", resp.StatusCode)
	}
}

// TestIdentityKeyRotation rotates the provider's signing key while the
// gateway runs: a token signed with the old key (never seen before) still
// verifies during the grace period, and a token signed with the new key
// verifies as soon as it is presented.
func TestIdentityKeyRotation(t *testing.T) {
	g := startGateway(t)
	warm, oldUnseen := g.token("alice"), g.token("bob")
	if status, body := g.bearerStatus(warm, nil); status != http.StatusOK { // the gateway fetches the JWKS now
		t.Fatalf("before rotation: %d %s", status, body)
	}
	if err := g.r.IDP.RotateKey(); err != nil {
		t.Fatal(err)
	}
	fresh := g.token("carol")
	if currentKid(t, fresh) == currentKid(t, oldUnseen) {
		t.Fatal("RotateKey did not change the signing key")
	}
	for name, tok := range map[string]string{"old key, first seen after rotation": oldUnseen, "new key": fresh} {
		if status, body := g.bearerStatus(tok, nil); status != http.StatusOK {
			t.Errorf("%s: %d %s, want 200", name, status, body)
		}
	}
}

// TestIdentityRefresh: offline_access gives a refresh token; the refresh
// grant returns a new ID token the gateway accepts, and rotates the refresh
// token (the old one is spent).
func TestIdentityRefresh(t *testing.T) {
	g := startGateway(t)
	status, first := g.grant(url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"},
		"scope": {"openid profile email groups offline_access"}})
	if status != http.StatusOK || first.RefreshToken == "" {
		t.Fatalf("password grant with offline_access: %d %+v", status, first.Error)
	}
	status, next := g.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}})
	if status != http.StatusOK || next.IDToken == "" || next.RefreshToken == "" || next.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh grant: %d %q, want new ID and refresh tokens", status, next.Error)
	}
	var me meJSON
	if code := g.call("GET", "/api/v1/me", next.IDToken, nil, &me); code != http.StatusOK || me.Username != "bob" || me.Via != "bearer" {
		t.Errorf("refreshed ID token: %d %+v", code, me)
	}
	if status, again := g.grant(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.RefreshToken}}); status != http.StatusBadRequest || again.Error != "invalid_grant" {
		t.Errorf("spent refresh token: %d %q, want 400 invalid_grant", status, again.Error)
	}
	// Without offline_access there is no refresh token to steal.
	if _, tr := g.grant(url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob"}, "scope": {"openid"}}); tr.RefreshToken != "" {
		t.Error("refresh token issued without offline_access")
	}
}

// TestIdentityCrossOriginWebSocket: a page elsewhere holding the user's
// cookie cannot open a tail; the gateway's own origin and configured extra
// origins pass the check (and then meet authentication and the grant).
func TestIdentityCrossOriginWebSocket(t *testing.T) {
	g := startGateway(t, "--allowed-origins", "https://console.example")
	carol := g.token("carol")
	c := newWebClient(t, g.url, nil)
	c.login("/", "alice")
	ws := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/g-none/tail"
	d := websocket.Dialer{Jar: c.http.Jar, HandshakeTimeout: 10 * time.Second}
	for _, tt := range []struct {
		origin string
		want   int
	}{
		{"https://evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{g.url, http.StatusNotFound},                     // origin and cookie pass; no such grant
		{"https://console.example", http.StatusNotFound}, // --allowed-origins
	} {
		conn, resp, err := d.Dial(ws, http.Header{"Origin": {tt.origin}, "User-Agent": {"identity-test"}})
		if err == nil {
			conn.Close()
		}
		if resp == nil || resp.StatusCode != tt.want {
			t.Errorf("upgrade from Origin %s: resp %v err %v, want %d", tt.origin, resp, err, tt.want)
		}
	}
	failed, _ := g.auditAs(carol, "auth.failed")
	if !slices.ContainsFunc(failed, func(e authEvent) bool { return e.Reason == "origin" && e.UserAgent == "identity-test" }) {
		t.Errorf("no auth.failed origin event for the refused upgrade: %+v", failed)
	}
}

// TestIdentitySecurityHeaders checks the browser-facing headers on a page, on
// the API, on the provider's login page and on an error.
func TestIdentitySecurityHeaders(t *testing.T) {
	g := startGateway(t)
	c := newWebClient(t, g.url, nil)
	login, _ := c.do("GET", "/login", nil, nil)
	paths := []string{"/", "/inbox", "/api/v1/me", "/api/v1/auth/config", "/api/v1/nope", "/healthz", login.Header.Get("Location")}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			resp, _ := c.do("GET", p, nil, nil)
			h := resp.Header
			csp := h.Get("Content-Security-Policy")
			if csp == "" || strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP %q: want a policy without unsafe-inline/unsafe-eval", csp)
			}
			if !strings.Contains(csp, "frame-ancestors 'none'") || h.Get("X-Frame-Options") != "DENY" {
				t.Errorf("framing: CSP %q, X-Frame-Options %q; want frame-ancestors 'none' and DENY", csp, h.Get("X-Frame-Options"))
			}
			if !strings.Contains(csp, "script-src 'self'") && !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q allows script from elsewhere", csp)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := h.Get("Referrer-Policy"); got != "same-origin" {
				t.Errorf("Referrer-Policy = %q, want same-origin", got)
			}
			if h.Get("Strict-Transport-Security") != "" {
				t.Errorf("HSTS sent over plain HTTP")
			}
		})
	}
}

// TestIdentityTrustedProxies: X-Forwarded-For is believed only from a
// configured proxy; otherwise the audited address is the peer's.
func TestIdentityTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name  string
		extra []string
		xff   string
		want  string
	}{
		{"no trusted proxies: header ignored", nil, "203.0.113.9", "127.0.0.1"},
		{"trusted proxy: forwarded client", []string{"--trusted-proxies", "127.0.0.1/32"}, "203.0.113.9", "203.0.113.9"},
		{"trusted proxy: spoofed hop before the client is ignored", []string{"--trusted-proxies", "127.0.0.1/32,10.0.0.0/8"},
			"198.51.100.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"trusted proxy: unparseable hop", []string{"--trusted-proxies", "127.0.0.1"}, "not-an-ip", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			g := startGateway(t, tt.extra...)
			carol := g.token("carol")
			g.bearerStatus("garbage", http.Header{"X-Forwarded-For": {tt.xff}})
			alice := g.token("alice")
			g.bearerStatus(alice, http.Header{"X-Forwarded-For": {tt.xff}})
			for _, action := range []string{"auth.failed", "auth.token"} {
				evs, _ := g.auditAs(carol, action)
				var addrs []string
				for _, e := range evs {
					if e.Action == action && (action == "auth.failed" || e.Actor["subject"] == "dev-alice") {
						addrs = append(addrs, e.SourceAddr)
					}
				}
				if len(addrs) != 1 || addrs[0] != tt.want {
					t.Errorf("%s source_addr = %v, want [%s]", action, addrs, tt.want)
				}
			}
		})
	}
}

// TestIdentitySecureCookiesBehindTLSTerminator: with an https public URL and
// plain HTTP on the listener (TLS ends at a proxy), cookies are Secure with
// the __Host- prefix and HSTS is sent.
func TestIdentitySecureCookiesBehindTLSTerminator(t *testing.T) {
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// Browsers see the https public URL (the development issuer is under
	// it); the gateway reaches its own provider in-process.
	g, _ := startGatewayArgs(t, "--dev", "--listen", addr, "--data", t.TempDir(), "--dev-demo-logs=false", "--log-level", "error",
		"--public-url", "https://"+addr)
	if g.url != "https://"+addr {
		t.Fatalf("public URL = %q", g.url)
	}
	c := newWebClient(t, g.url, schemeRewriter{})
	resp := c.login("/inbox", "alice")
	sc := setCookie(resp, "__Host-loggate_session")
	if sc == nil {
		t.Fatalf("no __Host-loggate_session cookie after callback (cookies: %s)", cookieNames(resp))
	}
	if !sc.Secure || !sc.HttpOnly || sc.Path != "/" || sc.Domain != "" || sc.SameSite != http.SameSiteLaxMode {
		t.Errorf("session cookie Secure=%v HttpOnly=%v Path=%q Domain=%q SameSite=%v", sc.Secure, sc.HttpOnly, sc.Path, sc.Domain, sc.SameSite)
	}
	if setCookie(resp, "loggate_session") != nil {
		t.Error("an unprefixed session cookie is set too")
	}
	if got := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(got, "max-age=") {
		t.Errorf("HSTS = %q", got)
	}
	if status, me := c.me(); status != http.StatusOK || me.Username != "alice" {
		t.Errorf("/me with the Secure cookie: %d %+v", status, me)
	}
	// A page on the public origin may post; the listener's plain origin may not.
	_, me := c.me()
	body := map[string]any{"service": "checkout", "env": "staging", "duration": "10m", "reason": "tls terminator"}
	if r, b := c.postJSON("/api/v1/requests", body, http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {"http://" + addr}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST from the plain-HTTP origin: %d %s, want 403", r.StatusCode, b)
	}
	if r, b := c.postJSON("/api/v1/requests", body, http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {g.url}}); r.StatusCode != http.StatusCreated {
		t.Errorf("POST from the public origin: %d %s, want 201", r.StatusCode, b)
	}
}

// TestIdentityDirectTLS serves HTTPS itself with --tls-cert/--tls-key.
func TestIdentityDirectTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := selfSignedCert(t, dir)
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	g, _ := startGatewayArgs(t, "--dev", "--listen", addr, "--data", t.TempDir(), "--dev-demo-logs=false", "--log-level", "error",
		"--tls-cert", cert, "--tls-key", key, "--public-url", "https://"+addr)
	resp, err := tlsClient(pool).Get(g.url + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || !strings.Contains(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("/healthz over TLS: %d TLS=%v HSTS %q", resp.StatusCode, resp.TLS != nil, resp.Header.Get("Strict-Transport-Security"))
	}
	// A full browser login over TLS, the provider reached on the same listener.
	c := newWebClient(t, g.url, tlsClient(pool).Transport)
	if resp := c.loginAttempt("/", "alice"); resp.StatusCode != http.StatusFound || setCookie(resp, "__Host-loggate_session") == nil {
		t.Errorf("login over TLS: callback %d, cookies %s; want 302 with a __Host- session cookie", resp.StatusCode, cookieNames(resp))
	}
	// The listener speaks only TLS.
	plain, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		plain.Body.Close()
		if plain.StatusCode == http.StatusOK {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
}

package auth

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBrowserLogin(t *testing.T) {
	e := newEnv(t, nil)
	resp := e.login(e.browser, "/streams/api?env=prod")
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("callback status = %d, want 302", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != "/streams/api?env=prod" {
		t.Errorf("callback Location = %q, want the requested next", loc)
	}
	ck := e.sessionCookie(e.browser)
	if ck == nil {
		t.Fatal("no session cookie after login")
	}
	var setCookie string
	for _, h := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(h, "loggate_session=") {
			setCookie = h
		}
	}
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(setCookie, attr) {
			t.Errorf("session Set-Cookie %q lacks %s", setCookie, attr)
		}
	}
	if len(setCookie) >= 4096 {
		t.Errorf("Set-Cookie is %d bytes, want < 4096", len(setCookie))
	}
	id, status := e.me(e.browser)
	if status != http.StatusOK {
		t.Fatalf("GET /me status = %d", status)
	}
	if id.Subject != "u-alice" || id.Via != "session" || id.SessionID == "" || !slices.Equal(id.Groups, []string{"sre", "oncall"}) {
		t.Errorf("identity = %+v", id)
	}
	logins := e.rec.byAction(ActionLogin)
	if len(logins) != 1 || logins[0].Identity.SessionID != id.SessionID {
		t.Errorf("auth.login events = %+v, want one for this session", logins)
	}

	// A second login gets a new session id (no fixation).
	e.login(e.browser, "/")
	id2, _ := e.me(e.browser)
	if id2.SessionID == id.SessionID {
		t.Errorf("session id reused across logins")
	}
}

func TestSecureCookies(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SecureCookies = true })
	w := httptest.NewRecorder()
	e.a.HandleLogin(w, httptest.NewRequest(http.MethodGet, "/login", nil))
	h := w.Header().Get("Set-Cookie")
	if !strings.HasPrefix(h, "__Host-loggate_flow=") || !strings.Contains(h, "Secure") {
		t.Errorf("flow Set-Cookie = %q, want __Host- prefix and Secure", h)
	}
}

func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(e *env)
		mangle     func(e *env, cb *url.URL) (*http.Client, *url.URL)
		wantReason string
	}{
		{"state mismatch", nil, func(e *env, cb *url.URL) (*http.Client, *url.URL) {
			q := cb.Query()
			q.Set("state", randomToken())
			cb.RawQuery = q.Encode()
			return e.browser, cb
		}, ReasonState},
		{"no flow cookie (login CSRF from another browser)", nil, func(e *env, cb *url.URL) (*http.Client, *url.URL) {
			return newBrowser(e.t), cb
		}, ReasonState},
		{"nonce mismatch", func(e *env) { e.op.nonceOverride = "attacker-nonce" }, nil, ReasonNonce},
		{"provider error", nil, func(e *env, cb *url.URL) (*http.Client, *url.URL) {
			cb.RawQuery = url.Values{"error": {"access_denied"}, "state": {cb.Query().Get("state")}}.Encode()
			return e.browser, cb
		}, ReasonProvider},
		{"bad code", nil, func(e *env, cb *url.URL) (*http.Client, *url.URL) {
			q := cb.Query()
			q.Set("code", "forged")
			cb.RawQuery = q.Encode()
			return e.browser, cb
		}, ReasonProvider},
		{"flow expired", nil, func(e *env, cb *url.URL) (*http.Client, *url.URL) {
			e.clk.Advance(flowTTL + time.Second)
			return e.browser, cb
		}, ReasonState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			if tt.setup != nil {
				tt.setup(e)
			}
			cb := e.startLogin(e.browser, "/x")
			c := e.browser
			if tt.mangle != nil {
				c, cb = tt.mangle(e, cb)
			}
			resp := e.get(c, cb.String())
			if resp.StatusCode < 400 {
				t.Fatalf("callback status = %d, want a refusal", resp.StatusCode)
			}
			if e.sessionCookie(c) != nil {
				t.Errorf("session cookie set despite refusal")
			}
			e.a.Close()
			fails := e.rec.byAction(ActionFailed)
			if len(fails) == 0 || fails[0].Reason != tt.wantReason {
				t.Errorf("auth.failed = %+v, want reason %q", fails, tt.wantReason)
			}
			if n := len(e.rec.byAction(ActionLogin)); n != 0 {
				t.Errorf("auth.login events = %d, want 0", n)
			}
		})
	}
}

func TestCallbackReplay(t *testing.T) {
	e := newEnv(t, nil)
	cb := e.startLogin(e.browser, "/")
	u, _ := url.Parse(e.gw.URL)
	flowCookies := e.browser.Jar.Cookies(u) // keep the flow cookie to replay it
	if resp := e.get(e.browser, cb.String()); resp.StatusCode != http.StatusFound {
		t.Fatalf("first callback = %d", resp.StatusCode)
	}
	replayer := newBrowser(t)
	replayer.Jar.SetCookies(u, flowCookies)
	if resp := e.get(replayer, cb.String()); resp.StatusCode < 400 {
		t.Fatalf("replayed callback status = %d, want a refusal", resp.StatusCode)
	}
}

func TestLoginDomainRestriction(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedEmailDomains = []string{"corp.example"} })
	resp := e.login(e.browser, "/")
	if resp.StatusCode != http.StatusForbidden || e.sessionCookie(e.browser) != nil {
		t.Fatalf("status = %d, cookie = %v; want 403 and no session", resp.StatusCode, e.sessionCookie(e.browser))
	}
}

func TestLoginAuditFailureLeavesNoSession(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.setRefuse(ActionLogin, true)
	resp := e.login(e.browser, "/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("callback status = %d, want 503", resp.StatusCode)
	}
	if ck := e.sessionCookie(e.browser); ck != nil {
		t.Fatalf("session cookie %q set although auth.login was not recorded", ck.Name)
	}
	if _, status := e.me(e.browser); status != http.StatusUnauthorized {
		t.Errorf("GET /me = %d, want 401", status)
	}
}

func TestOpenRedirectsEndAtRoot(t *testing.T) {
	for _, next := range []string{"//evil.com", "https://evil.com", `/\evil.com`, "/%2F%2Fevil.com", "javascript:alert(1)", "/\t/evil.com"} {
		t.Run(next, func(t *testing.T) {
			e := newEnv(t, nil)
			resp := e.login(e.browser, next)
			if loc := resp.Header.Get("Location"); loc != "/" {
				t.Errorf("next=%q ended at %q, want /", next, loc)
			}
		})
	}
}

func TestSafeNext(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/streams/api", "/streams/api"},
		{"/streams/api?env=prod&x=a//b", "/streams/api?env=prod&x=a//b"},
		{"/requests/42", "/requests/42"},
		{"//evil.com", "/"},
		{"///evil.com", "/"},
		{"https://evil.com", "/"},
		{"http:evil.com", "/"},
		{"evil.com", "/"},
		{`/\evil.com`, "/"},
		{`\\evil.com`, "/"},
		{"/%2F%2Fevil.com", "/"},
		{"/%2f/evil.com", "/"},
		{"/%5Cevil.com", "/"},
		{"/%252F%252Fevil.com", "/"},
		{"/ /evil.com", "/"},
		{"/\t/evil.com", "/"},
		{"/\r\nSet-Cookie:x", "/"},
		{"/%0d%0aLocation:x", "/"},
		{"/x#frag", "/"},
		{"/./evil", "/"},
		{"/../etc", "/"},
		{"/.//evil.com", "/"},
		{"/a/..", "/"},
		{"/\u2028evil", "/"},
		{"/\x00", "/"},
		{"/%", "/"},
		{"/" + strings.Repeat("a", 3000), "/"},
	}
	for _, tt := range tests {
		if got := SafeNext(tt.in); got != tt.want {
			t.Errorf("SafeNext(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "//evil.com", `/\evil`, "/a?b=c", "/%2F%2F", "https://x", "/./", "/\t/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := SafeNext(in)
		if out != "/" && out != in {
			t.Fatalf("SafeNext(%q) = %q: must be the input or /", in, out)
		}
		// Whatever is accepted must resolve to the same host, even after unescaping.
		base, _ := url.Parse("https://gw.example/here/")
		for _, cand := range []string{out, mustUnescape(out)} {
			ref, err := url.Parse(cand)
			if err != nil {
				continue
			}
			if got := base.ResolveReference(ref); got.Host != "gw.example" || got.Scheme != "https" {
				t.Fatalf("SafeNext(%q) = %q resolves to %s", in, out, got)
			}
		}
		if strings.ContainsAny(out, "\\\r\n\t ") || strings.HasPrefix(out, "//") {
			t.Fatalf("SafeNext(%q) = %q", in, out)
		}
	})
}

func mustUnescape(s string) string {
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

func TestSessionKeyRotation(t *testing.T) {
	e := newEnv(t, nil)
	e.login(e.browser, "/")
	ck := e.sessionCookie(e.browser)
	oldKey := testSessionKey
	newKey := bytes.Repeat([]byte("n"), 32)
	request := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(ck)
		return r
	}
	tests := []struct {
		name string
		keys [][]byte
		ok   bool
	}{
		{"old key still listed", [][]byte{newKey, oldKey}, true},
		{"old key removed", [][]byte{newKey}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.cfg
			cfg.SessionKeys = tt.keys
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			id, err := a.Authenticate(request())
			if tt.ok && (err != nil || id.Subject != "u-alice") {
				t.Fatalf("Authenticate = %+v, %v; want alice", id, err)
			}
			if !tt.ok && reasonOf(err) != ReasonMalformed {
				t.Fatalf("Authenticate err = %v, want malformed", err)
			}
			if tt.ok {
				// Re-issued cookies are sealed with the new first key.
				e.clk.Advance(2 * time.Minute)
				w := httptest.NewRecorder()
				if _, err := a.AuthenticateHTTP(w, request()); err != nil {
					t.Fatal(err)
				}
				fresh := w.Result().Cookies()
				if len(fresh) != 1 {
					t.Fatalf("re-issued cookies = %d, want 1", len(fresh))
				}
				only, _ := New(func() Config { c := cfg; c.SessionKeys = [][]byte{newKey}; return c }())
				defer only.Close()
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.AddCookie(fresh[0])
				if _, err := only.Authenticate(r); err != nil {
					t.Errorf("re-issued cookie does not open with the new key alone: %v", err)
				}
			}
		})
	}
}

func TestCookieTamperAndPurpose(t *testing.T) {
	e := newEnv(t, nil)
	e.login(e.browser, "/")
	ck := e.sessionCookie(e.browser)
	raw := []byte(ck.Value)
	raw[len(raw)/2] ^= 1
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: ck.Name, Value: string(raw)})
	if _, err := e.a.Authenticate(r); reasonOf(err) != ReasonMalformed {
		t.Errorf("tampered cookie: %v, want malformed", err)
	}
	// A flow cookie cannot pose as a session cookie.
	flowVal, _ := e.a.seal(purposeFlow, &session{ID: "x", Issuer: e.op.issuer(), Subject: "mallory", Absolute: 1 << 40, Seen: e.clk.Now().Unix(), TokenExp: 1 << 40})
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: ck.Name, Value: flowVal})
	if _, err := e.a.Authenticate(r); reasonOf(err) != ReasonMalformed {
		t.Errorf("flow-sealed cookie as session: %v, want malformed", err)
	}
}

func TestSessionLifetime(t *testing.T) {
	tests := []struct {
		name   string
		steps  []time.Duration // advance, then GET /me, for each step
		wantOK []bool
	}{
		// Idle 8h: activity every 7h keeps the session alive until the absolute 24h.
		{"activity keeps it alive", []time.Duration{7 * time.Hour, 7 * time.Hour, 7 * time.Hour}, []bool{true, true, true}},
		{"idle too long", []time.Duration{time.Hour, 8*time.Hour + time.Minute}, []bool{true, false}},
		{"absolute lifetime", []time.Duration{7 * time.Hour, 7 * time.Hour, 7 * time.Hour, 4 * time.Hour}, []bool{true, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.op.idTTL = 48 * time.Hour // keep the ID token valid: this tests the session limits
			e.login(e.browser, "/")
			for i, d := range tt.steps {
				e.clk.Advance(d)
				_, status := e.me(e.browser)
				if got := status == http.StatusOK; got != tt.wantOK[i] {
					t.Fatalf("step %d (+%v): status %d, want ok=%v", i, d, status, tt.wantOK[i])
				}
			}
		})
	}
}

func TestRefreshWhenIDTokenExpires(t *testing.T) {
	e := newEnv(t, nil)
	e.op.idTTL = 10 * time.Minute
	e.login(e.browser, "/")
	before, _ := e.me(e.browser)
	e.clk.Advance(15 * time.Minute)

	// The read-only Authenticate cannot store a refreshed session: it refuses.
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(e.sessionCookie(e.browser))
	if _, err := e.a.Authenticate(r); reasonOf(err) != ReasonExpired {
		t.Errorf("Authenticate with expired ID token: %v, want expired", err)
	}

	e.op.mu.Lock()
	e.op.refreshGroups = []string{"sre", "incident-commander"}
	e.op.mu.Unlock()
	id, status := e.me(e.browser)
	if status != http.StatusOK {
		t.Fatalf("GET /me after ID token expiry = %d, want refreshed 200", status)
	}
	if id.SessionID != before.SessionID || !slices.Equal(id.Groups, []string{"sre", "incident-commander"}) {
		t.Errorf("refreshed identity = %+v, want same session with new groups", id)
	}
	if n := len(e.rec.byAction(ActionRefresh)); n != 1 {
		t.Errorf("auth.refresh events = %d, want 1", n)
	}
	// The new cookie carries the rotated refresh token: the next expiry refreshes again.
	e.clk.Advance(15 * time.Minute)
	if _, status := e.me(e.browser); status != http.StatusOK {
		t.Fatalf("second refresh: status %d", status)
	}
	// The provider revokes the grant: the session ends.
	e.op.mu.Lock()
	e.op.refreshFail = true
	e.op.mu.Unlock()
	e.clk.Advance(15 * time.Minute)
	if _, status := e.me(e.browser); status != http.StatusUnauthorized {
		t.Fatalf("after invalid_grant: status %d, want 401", status)
	}
	if e.sessionCookie(e.browser) != nil {
		t.Errorf("dead session cookie not cleared")
	}
}

func TestSessionTooLarge(t *testing.T) {
	e := newEnv(t, nil)
	var groups []string
	for i := range 400 {
		groups = append(groups, fmt.Sprintf("group-with-a-rather-long-name-%03d", i))
	}
	e.op.user["groups"] = groups
	resp := e.login(e.browser, "/")
	if resp.StatusCode != http.StatusForbidden || e.sessionCookie(e.browser) != nil {
		t.Fatalf("oversized session: status %d, cookie %v; want 403 and none", resp.StatusCode, e.sessionCookie(e.browser))
	}
	e.a.Close()
	fails := e.rec.byAction(ActionFailed)
	if len(fails) == 0 || fails[0].Reason != ReasonTooLarge {
		t.Errorf("failures = %+v, want too_large", fails)
	}
}

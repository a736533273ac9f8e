package devidp

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return jws.Signatures[0].Header.KeyID
}

func TestRotateKey(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeyGrace = 10 * time.Minute })
	cfg := e.oauth2(t, "web", "openid")
	get := func() *oauth2.Token {
		tok, err := cfg.PasswordCredentialsToken(e.ctx(t), "alice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	old := get()
	oldVerifier := e.verifier(t, "web") // caches the old JWKS
	verifyID(t, oldVerifier, old)

	if err := e.p.RotateKey(); err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	cur := get()
	oldID, _ := old.Extra("id_token").(string)
	curID, _ := cur.Extra("id_token").(string)
	if kidOf(t, oldID) == kidOf(t, curID) {
		t.Fatal("token after rotation has the old kid")
	}
	verifyID(t, oldVerifier, cur) // unknown kid: go-oidc refetches the JWKS
	verifyID(t, e.verifier(t, "web"), old)
	verifyID(t, e.verifier(t, "web"), cur)

	e.clock.Advance(11 * time.Minute) // past the grace period, tokens still unexpired
	fresh := e.verifier(t, "web")
	if _, err := fresh.Verify(t.Context(), oldID); err == nil {
		t.Error("token signed by a key past its grace period still verifies")
	}
	verifyID(t, fresh, cur)
}

func TestEntriesAreBounded(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxEntries = 2 })
	authURL := e.oauth2(t, "web", "openid").AuthCodeURL("s")
	e.openLogin(t, authURL)
	e.openLogin(t, authURL)
	resp, err := e.srv.Client().Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("third pending login: status %d, want 503", resp.StatusCode)
	}
	e.clock.Advance(loginFormTTL + time.Second) // expired entries make room again
	e.openLogin(t, authURL)
}

func TestNewValidates(t *testing.T) {
	ok := Config{Issuer: "http://127.0.0.1:1/dev/oidc", Clients: []Client{{ID: "a"}}, Users: DemoUsers()}
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"relative issuer", func(c *Config) { c.Issuer = "/dev/oidc" }},
		{"issuer with query", func(c *Config) { c.Issuer += "?x=1" }},
		{"no clients", func(c *Config) { c.Clients = nil }},
		{"no users", func(c *Config) { c.Users = nil }},
		{"duplicate client", func(c *Config) { c.Clients = []Client{{ID: "a"}, {ID: "a"}} }},
		{"relative redirect", func(c *Config) { c.Clients = []Client{{ID: "a", RedirectURIs: []string{"/cb"}}} }},
		{"empty password", func(c *Config) { c.Users = []User{{Username: "x"}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.edit(&cfg)
			if p, err := New(cfg); err == nil {
				p.Close()
				t.Error("New accepted an invalid config")
			}
		})
	}
	p, err := New(ok)
	if err != nil {
		t.Fatalf("New(valid): %v", err)
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestServesOnlyUnderIssuerPath(t *testing.T) {
	e := newEnv(t, nil)
	for _, path := range []string{"/dev/oidcx/keys", "/keys", "/dev/oidc/nope"} {
		rec := httptest.NewRecorder()
		e.p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	e.p.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/dev/oidc/static.css", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("static.css: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}

func FuzzTokenEndpoint(f *testing.F) {
	p, err := New(Config{Issuer: "http://127.0.0.1:1/dev/oidc", Users: DemoUsers(),
		Clients: []Client{{ID: "cli"}, {ID: "web", Secret: "s", RedirectURIs: []string{"http://127.0.0.1:1/cb"}}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	for _, s := range []string{
		"grant_type=password&client_id=cli&username=alice&password=alice",
		"grant_type=password&client_id=cli&username=alice&password=alice&scope=openid+offline_access",
		"grant_type=authorization_code&client_id=web&client_secret=s&code=x&code_verifier=y",
		"grant_type=refresh_token&client_id=cli&refresh_token=abc",
		"grant_type=" + url.QueryEscape(grantDeviceCode) + "&client_id=cli&device_code=x",
		"grant_type=password&grant_type=password", "%zz", "a=b;c=d", "",
	} {
		f.Add(s, "application/x-www-form-urlencoded", "")
	}
	f.Add("grant_type=password", "text/plain", "Basic d2ViOnM=")
	f.Fuzz(func(t *testing.T, body, contentType, authz string) {
		req := httptest.NewRequest(http.MethodPost, "/dev/oidc/token", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusServiceUnavailable: // 503: table full
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		if rec.Header().Get("Cache-Control") != "no-store" || !strings.HasPrefix(rec.Body.String(), "{") {
			t.Fatalf("response not a no-store JSON object: %q", rec.Body.String())
		}
	})
}

func newBenchProvider(b *testing.B) *Provider {
	p, err := New(Config{Issuer: "http://127.0.0.1:1/dev/oidc", Users: DemoUsers(), Clients: []Client{{ID: "cli"}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkPasswordGrant measures one token response (two RS256 signatures).
func BenchmarkPasswordGrant(b *testing.B) {
	p := newBenchProvider(b)
	body := "grant_type=password&client_id=cli&username=bob&password=bob&scope=openid+email+groups"
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/dev/oidc/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// BenchmarkUserinfo measures access-token verification plus the response.
func BenchmarkUserinfo(b *testing.B) {
	p := newBenchProvider(b)
	resp, e := p.issue(p.clients["cli"], p.users["bob"], []string{"openid", "email"}, time.Now(), "", "f")
	if e != nil {
		b.Fatal(e.desc)
	}
	auth := "Bearer " + resp["access_token"].(string)
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/dev/oidc/userinfo", nil)
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		p.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

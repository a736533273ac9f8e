package devidp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// clock is a settable time source shared by the provider and verifiers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a provider mounted at /dev/oidc/ on a real HTTP server, next to a
// test callback at /cb that echoes the code and state it receives.
type env struct {
	srv    *httptest.Server
	p      *Provider
	issuer string
	clock  *clock
}

const webSecret = "web-secret"

func newEnv(t *testing.T, edit func(*Config)) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	e := &env{srv: srv, issuer: base + "/dev/oidc", clock: &clock{t: time.Now()}}
	cfg := Config{
		Issuer: e.issuer,
		Clients: []Client{
			{ID: "web", Secret: webSecret, RedirectURIs: []string{base + "/cb"}, PostLogoutRedirectURIs: []string{base + "/bye"}},
			{ID: "cli", RedirectURIs: []string{base + "/cb", "http://127.0.0.1/native"}},
		},
		Users: DemoUsers(),
		Now:   e.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.p = p
	mux := http.NewServeMux()
	mux.Handle("/dev/oidc/", p)
	mux.HandleFunc("/cb", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "code=%s state=%s error=%s", r.URL.Query().Get("code"), r.URL.Query().Get("state"), r.URL.Query().Get("error"))
	})
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func (e *env) ctx(t *testing.T) context.Context {
	return oidc.ClientContext(t.Context(), e.srv.Client())
}

func (e *env) provider(t *testing.T) *oidc.Provider {
	t.Helper()
	op, err := oidc.NewProvider(e.ctx(t), e.issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider: %v", err)
	}
	return op
}

// verifier builds a fresh verifier (own key cache) on the test clock.
func (e *env) verifier(t *testing.T, clientID string) *oidc.IDTokenVerifier {
	return e.provider(t).Verifier(&oidc.Config{ClientID: clientID, Now: e.clock.Now})
}

func (e *env) oauth2(t *testing.T, clientID string, scopes ...string) *oauth2.Config {
	c := &oauth2.Config{ClientID: clientID, Endpoint: e.provider(t).Endpoint(), RedirectURL: e.srv.URL + "/cb", Scopes: scopes}
	if clientID == "web" {
		c.ClientSecret = webSecret
	}
	return c
}

// noRedirect is a client that returns redirects instead of following them.
func (e *env) noRedirect() *http.Client {
	c := *e.srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// postToken posts form to the token endpoint (client_secret_post when a
// secret is in form) and decodes the JSON answer.
func (e *env) post(t *testing.T, endpoint string, form url.Values) (int, map[string]any, http.Header) {
	t.Helper()
	resp, err := e.srv.Client().PostForm(e.issuer+endpoint, form)
	if err != nil {
		t.Fatalf("POST %s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("POST %s: decode JSON (status %d): %v", endpoint, resp.StatusCode, err)
	}
	return resp.StatusCode, body, resp.Header
}

var hiddenRequest = regexp.MustCompile(`name="request" value="([^"]+)"`)
var hiddenCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// openLogin GETs an authorization URL and returns the login form's request token.
func (e *env) openLogin(t *testing.T, authURL string) string {
	t.Helper()
	resp, err := e.noRedirect().Get(authURL)
	if err != nil {
		t.Fatalf("GET auth: %v", err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET auth: status %d, want 200; body %s", resp.StatusCode, body)
	}
	m := hiddenRequest.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("login form has no request token: %s", body)
	}
	return m[1]
}

// submitLogin posts credentials as a same-origin browser would.
func (e *env) submitLogin(t *testing.T, client *http.Client, request, user, pass string) *http.Response {
	t.Helper()
	form := url.Values{"request": {request}, "username": {user}, "password": {pass}}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/auth", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.srv.URL)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST auth: %v", err)
	}
	return resp
}

// loginCode runs the browser part of the code flow and returns the code.
func (e *env) loginCode(t *testing.T, authURL, user string) (code, state string) {
	t.Helper()
	resp := e.submitLogin(t, e.noRedirect(), e.openLogin(t, authURL), user, user)
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("login: status %d Location %q, want 303 with code", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code"), loc.Query().Get("state")
}

type idClaims struct {
	Sub           string   `json:"sub"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Username      string   `json:"preferred_username"`
	Groups        []string `json:"groups"`
	Nonce         string   `json:"nonce"`
	AuthTime      int64    `json:"auth_time"`
}

func verifyID(t *testing.T, v *oidc.IDTokenVerifier, tok *oauth2.Token) (*oidc.IDToken, idClaims) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	idt, err := v.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("verify id_token: %v", err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatalf("claims: %v", err)
	}
	return idt, c
}

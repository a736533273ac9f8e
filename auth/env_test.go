package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// recorder collects OnEvent calls and can refuse chosen actions.
type recorder struct {
	mu     sync.Mutex
	events []Event
	refuse map[string]bool
}

func (r *recorder) onEvent(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse[ev.Action] {
		return errors.New("audit store unavailable")
	}
	r.events = append(r.events, ev)
	return nil
}

func (r *recorder) byAction(action string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, ev := range r.events {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

func (r *recorder) setRefuse(action string, v bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse == nil {
		r.refuse = map[string]bool{}
	}
	r.refuse[action] = v
}

// env is a provider, a gateway-like server using the Authenticator, and a browser.
type env struct {
	t       *testing.T
	clk     *clock
	op      *testOP
	a       *Authenticator
	gw      *httptest.Server
	rec     *recorder
	cfg     Config
	browser *http.Client
}

var testSessionKey = bytes.Repeat([]byte("k"), 32)

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, clk: newClock(), rec: &recorder{}}
	e.op = newTestOP(t, e.clk)
	var handler http.Handler
	e.gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.gw.Close)
	e.cfg = Config{
		IssuerURL:    e.op.issuer(),
		ClientID:     "gateway",
		ClientSecret: "s3cret",
		RedirectURL:  e.gw.URL + "/auth/callback",
		SessionKeys:  [][]byte{testSessionKey},
		OnEvent:      e.rec.onEvent,
		Now:          e.clk.Now,
	}
	if mod != nil {
		mod(&e.cfg)
	}
	a, err := New(e.cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	e.a = a
	handler = e.mux(a)
	e.browser = newBrowser(t)
	return e
}

func newBrowser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) mux(a *Authenticator) http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET /login", a.HandleLogin)
	m.HandleFunc("GET /auth/callback", a.HandleCallback)
	m.HandleFunc("POST /logout", a.HandleLogout)
	m.HandleFunc("GET /me", func(w http.ResponseWriter, r *http.Request) {
		id, err := a.AuthenticateHTTP(w, r)
		if err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		writeJSON(w, id)
	})
	m.HandleFunc("GET /csrf", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, a.CSRFToken(r)) })
	m.HandleFunc("POST /action", func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.Authenticate(r); err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		if err := a.CheckCSRF(r); err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page "+r.URL.Path) })
	return m
}

func (e *env) get(c *http.Client, u string) *http.Response {
	e.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		e.t.Fatalf("GET %s: %v", u, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// startLogin runs GET /login and the provider's authorize step, returning the
// callback URL the provider redirected to (not yet visited).
func (e *env) startLogin(c *http.Client, next string) *url.URL {
	e.t.Helper()
	resp := e.get(c, e.gw.URL+"/login?next="+url.QueryEscape(next))
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("GET /login: status %d, want 302", resp.StatusCode)
	}
	authURL, _ := resp.Location()
	q := authURL.Query()
	for _, p := range []string{"state", "nonce", "code_challenge"} {
		if q.Get(p) == "" {
			e.t.Fatalf("authorize URL %s lacks %s", authURL, p)
		}
	}
	if got := q.Get("code_challenge_method"); got != "S256" {
		e.t.Fatalf("code_challenge_method = %q, want S256", got)
	}
	resp = e.get(c, authURL.String())
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("authorize: status %d", resp.StatusCode)
	}
	cb, _ := resp.Location()
	return cb
}

// login runs the whole browser flow and returns the callback response.
func (e *env) login(c *http.Client, next string) *http.Response {
	e.t.Helper()
	return e.get(c, e.startLogin(c, next).String())
}

// me fetches /me with the browser; it returns the identity or the status.
func (e *env) me(c *http.Client) (Identity, int) {
	e.t.Helper()
	resp, err := c.Get(e.gw.URL + "/me")
	if err != nil {
		e.t.Fatalf("GET /me: %v", err)
	}
	defer resp.Body.Close()
	var id Identity
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&id); err != nil {
			e.t.Fatalf("decode /me: %v", err)
		}
	}
	return id, resp.StatusCode
}

func (e *env) sessionCookie(c *http.Client) *http.Cookie {
	u, _ := url.Parse(e.gw.URL)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == "loggate_session" {
			return ck
		}
	}
	return nil
}

// bearer authenticates a request carrying tok.
func (e *env) bearer(tok string) (Identity, error) {
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return e.a.Authenticate(r)
}

func reasonOf(err error) string {
	var te *TokenError
	if errors.As(err, &te) {
		return te.Reason
	}
	if err == nil {
		return ""
	}
	return "other: " + err.Error()
}

func postForm(c *http.Client, u string, form url.Values, header http.Header) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSONAny(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func jsonUnmarshal(b []byte, v any) {
	if err := json.Unmarshal(b, v); err != nil {
		panic(err)
	}
}

func splitParts(tok string) []string { return strings.Split(tok, ".") }

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

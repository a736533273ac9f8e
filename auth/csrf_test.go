package auth

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// csrfPost posts to /action with the browser's cookies.
func (e *env) csrfPost(token string, viaForm bool, origin string) int {
	e.t.Helper()
	form := url.Values{}
	h := http.Header{}
	if viaForm {
		form.Set(CSRFField, token)
	} else if token != "" {
		h.Set(CSRFHeader, token)
	}
	if origin != "" {
		h.Set("Origin", origin)
	}
	resp, err := postForm(e.browser, e.gw.URL+"/action", form, h)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode
}

func TestCSRF(t *testing.T) {
	e := newEnv(t, nil)
	e.login(e.browser, "/")
	resp, err := e.browser.Get(e.gw.URL + "/csrf")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	resp.Body.Close()
	token := buf.String()
	if token == "" {
		t.Fatal("CSRFToken empty with a session")
	}
	tests := []struct {
		name   string
		token  string
		form   bool
		origin string
		want   int
	}{
		{"missing", "", false, "", http.StatusForbidden},
		{"wrong", "AAAA" + token[4:], false, "", http.StatusForbidden},
		{"right header", token, false, "", http.StatusNoContent},
		{"right form field", token, true, "", http.StatusNoContent},
		{"right token, own origin", token, false, e.gw.URL, http.StatusNoContent},
		{"right token, foreign origin", token, false, "https://evil.example", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.csrfPost(tt.token, tt.form, tt.origin); got != tt.want {
				t.Errorf("status = %d, want %d", got, tt.want)
			}
		})
	}
	// The token is bound to the session: another login changes it.
	other := newEnv(t, nil)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if got := other.a.CSRFToken(r); got != "" {
		t.Errorf("CSRFToken without a session = %q, want empty", got)
	}
	e.login(e.browser, "/")
	if got := e.csrfPost(token, false, ""); got != http.StatusForbidden {
		t.Errorf("old session's token after re-login: status %d, want 403", got)
	}
	if !errors.Is(e.a.CheckCSRF(r), ErrCSRF) {
		t.Errorf("CheckCSRF without session is not ErrCSRF")
	}
}

func TestLogout(t *testing.T) {
	tests := []struct {
		name         string
		noEndSession bool
	}{{"with end_session_endpoint", false}, {"without", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.op.noEndSession = tt.noEndSession
			e.login(e.browser, "/")
			token := e.a.csrfTokenFromCookie(t, e.sessionCookie(e.browser))
			if resp, _ := postForm(e.browser, e.gw.URL+"/logout", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("logout without csrf = %d, want 403", resp.StatusCode)
			} else if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("logout without csrf: Content-Type %q, want the API's JSON error shape", ct)
			}
			resp, err := postForm(e.browser, e.gw.URL+"/logout", url.Values{CSRFField: {token}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout status = %d, want 303", resp.StatusCode)
			}
			loc, _ := resp.Location()
			if tt.noEndSession {
				if loc.Path != "/" || loc.Host != strings.TrimPrefix(e.gw.URL, "http://") {
					t.Errorf("logout Location = %s, want /", loc)
				}
			} else {
				q := loc.Query()
				if loc.Path != "/end_session" || q.Get("id_token_hint") == "" || q.Get("post_logout_redirect_uri") != e.gw.URL+"/" {
					t.Errorf("logout Location = %s, want end_session with hint and post-logout uri", loc)
				}
			}
			if e.sessionCookie(e.browser) != nil {
				t.Errorf("session cookie still present after logout")
			}
			if _, status := e.me(e.browser); status != http.StatusUnauthorized {
				t.Errorf("GET /me after logout = %d, want 401", status)
			}
			if n := len(e.rec.byAction(ActionLogout)); n != 1 {
				t.Errorf("auth.logout events = %d, want 1", n)
			}
		})
	}
}

// csrfTokenFromCookie computes the CSRF token for a session cookie.
func (a *Authenticator) csrfTokenFromCookie(t *testing.T, ck *http.Cookie) string {
	t.Helper()
	if ck == nil {
		t.Fatal("no session cookie")
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(ck)
	return a.CSRFToken(r)
}

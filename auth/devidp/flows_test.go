package devidp

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

func TestDiscoveryConsumedByGoOIDC(t *testing.T) {
	e := newEnv(t, nil)
	op := e.provider(t)
	ep := op.Endpoint()
	if got, want := ep.TokenURL, e.issuer+"/token"; got != want {
		t.Errorf("TokenURL = %q, want %q", got, want)
	}
	if got, want := ep.DeviceAuthURL, e.issuer+"/device/code"; got != want {
		t.Errorf("DeviceAuthURL = %q, want %q", got, want)
	}
	var meta struct {
		EndSession string   `json:"end_session_endpoint"`
		PKCE       []string `json:"code_challenge_methods_supported"`
		Grants     []string `json:"grant_types_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.EndSession != e.issuer+"/logout" || !slices.Equal(meta.PKCE, []string{"S256"}) || !slices.Contains(meta.Grants, "password") {
		t.Errorf("discovery metadata = %+v", meta)
	}
}

func TestPasswordGrant(t *testing.T) {
	for _, client := range []string{"web", "cli"} {
		t.Run(client, func(t *testing.T) {
			e := newEnv(t, nil)
			cfg := e.oauth2(t, client, "openid", "profile", "email", "groups")
			tok, err := cfg.PasswordCredentialsToken(e.ctx(t), "bob", "bob")
			if err != nil {
				t.Fatalf("password grant: %v", err)
			}
			idt, c := verifyID(t, e.verifier(t, client), tok)
			if want := []string{"engineers", "sre-leads", "oncall"}; !slices.Equal(c.Groups, want) {
				t.Errorf("groups = %v, want %v", c.Groups, want)
			}
			if c.Email != "bob@example.com" || !c.EmailVerified || c.Sub == c.Email || c.Sub != "dev-bob" || c.Username != "bob" {
				t.Errorf("claims = %+v", c)
			}
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				t.Errorf("at_hash: %v", err)
			}
			if tok.RefreshToken != "" {
				t.Errorf("refresh token issued without offline_access")
			}
			// The access token is a JWT an API can verify with the same keys.
			at, err := e.verifier(t, client).Verify(t.Context(), tok.AccessToken)
			if err != nil {
				t.Fatalf("verify access token: %v", err)
			}
			var ac struct {
				Scope    string `json:"scope"`
				ClientID string `json:"client_id"`
				Email    string `json:"email"`
			}
			if err := at.Claims(&ac); err != nil || ac.Scope != "openid profile email groups" || ac.ClientID != client || ac.Email != "bob@example.com" {
				t.Errorf("access token claims = %+v, %v", ac, err)
			}
			if got := kidOf(t, tok.AccessToken); got == "" {
				t.Error("access token has no kid")
			}
			ui, err := e.provider(t).UserInfo(e.ctx(t), oauth2.StaticTokenSource(tok))
			if err != nil || ui.Email != "bob@example.com" || ui.Subject != "dev-bob" {
				t.Errorf("userinfo = %+v, %v", ui, err)
			}
		})
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	e := newEnv(t, nil)
	pw := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"password"}, "client_id": {"cli"}, "username": {"alice"}, "password": {"alice"}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name       string
		form       url.Values
		wantStatus int
		wantError  string
	}{
		{"wrong password", pw("password", "bob"), 400, "invalid_grant"},
		{"unknown user", pw("username", "mallory"), 400, "invalid_grant"},
		{"unknown scope", pw("scope", "openid admin"), 400, "invalid_scope"},
		{"scope without openid", pw("scope", "email"), 400, "invalid_scope"},
		{"unknown client", pw("client_id", "nope"), 401, "invalid_client"},
		{"wrong secret", pw("client_id", "web", "client_secret", "guess"), 401, "invalid_client"},
		{"missing secret", pw("client_id", "web"), 401, "invalid_client"},
		{"secret for public client", pw("client_secret", "x"), 401, "invalid_client"},
		{"unsupported grant", pw("grant_type", "client_credentials"), 400, "unsupported_grant_type"},
		{"missing grant", pw("grant_type", ""), 400, "invalid_request"},
		{"repeated parameter", func() url.Values { v := pw(); v.Add("username", "bob"); return v }(), 400, "invalid_request"},
		{"bad code", url.Values{"grant_type": {"authorization_code"}, "client_id": {"cli"}, "code": {"x"}}, 400, "invalid_grant"},
		{"bad refresh", url.Values{"grant_type": {"refresh_token"}, "client_id": {"cli"}, "refresh_token": {"x"}}, 400, "invalid_grant"},
		{"bad device code", url.Values{"grant_type": {grantDeviceCode}, "client_id": {"cli"}, "device_code": {"x"}}, 400, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := e.post(t, "/token", tt.form)
			if status != tt.wantStatus || body["error"] != tt.wantError {
				t.Errorf("got %d %v, want %d %s", status, body, tt.wantStatus, tt.wantError)
			}
			if got := h.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
		})
	}
}

func TestAuthCodePKCEFlow(t *testing.T) {
	e := newEnv(t, nil)
	for _, client := range []string{"web", "cli"} {
		t.Run(client, func(t *testing.T) {
			cfg := e.oauth2(t, client, oidc.ScopeOpenID, "email", "groups", oidc.ScopeOfflineAccess)
			verifier, nonce := oauth2.GenerateVerifier(), "n-"+client
			authURL := cfg.AuthCodeURL("st-"+client, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))

			// GET the form, POST credentials, follow the redirect to the test callback.
			resp := e.submitLogin(t, e.srv.Client(), e.openLogin(t, authURL), "carol", "carol")
			body := readBody(t, resp)
			if resp.Request.URL.Path != "/cb" || !strings.Contains(body, "state=st-"+client) {
				t.Fatalf("callback got %s %q", resp.Request.URL, body)
			}
			code := resp.Request.URL.Query().Get("code")

			tok, err := cfg.Exchange(e.ctx(t), code, oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			_, c := verifyID(t, e.verifier(t, client), tok)
			if c.Nonce != nonce {
				t.Errorf("nonce = %q, want %q", c.Nonce, nonce)
			}
			if !slices.Equal(c.Groups, []string{"security", "loggate-admins"}) || c.Email != "carol@example.com" {
				t.Errorf("claims = %+v", c)
			}
			if tok.RefreshToken == "" {
				t.Errorf("no refresh token despite offline_access")
			}

			_, err = cfg.Exchange(e.ctx(t), code, oauth2.VerifierOption(verifier))
			if re := (*oauth2.RetrieveError)(nil); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Errorf("code reuse: err = %v, want invalid_grant", err)
			}
			status, res, _ := e.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
				"client_id": {client}, "client_secret": {cfg.ClientSecret}})
			if status != http.StatusBadRequest || res["error"] != "invalid_grant" {
				t.Errorf("refresh token from a replayed code: %d %v, want 400 invalid_grant (revoked)", status, res["error"])
			}
		})
	}
}

func TestAuthCodeRefusals(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.oauth2(t, "cli", "openid")
	verifier := oauth2.GenerateVerifier()

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		code, _ := e.loginCode(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
		if _, err := cfg.Exchange(e.ctx(t), code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Fatal("exchange with wrong verifier succeeded")
		}
		if _, err := cfg.Exchange(e.ctx(t), code, oauth2.VerifierOption(verifier)); err == nil {
			t.Error("code still usable after a failed exchange")
		}
	})
	t.Run("missing PKCE verifier", func(t *testing.T) {
		code, _ := e.loginCode(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
		if _, err := cfg.Exchange(e.ctx(t), code); err == nil {
			t.Fatal("exchange without verifier succeeded")
		}
	})
	t.Run("other redirect_uri", func(t *testing.T) {
		code, _ := e.loginCode(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
		other := *cfg
		other.RedirectURL = "http://127.0.0.1:9/callback"
		if _, err := other.Exchange(e.ctx(t), code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("exchange with another redirect_uri succeeded")
		}
	})
	t.Run("other client", func(t *testing.T) {
		code, _ := e.loginCode(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
		web := e.oauth2(t, "web", "openid")
		if _, err := web.Exchange(e.ctx(t), code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("exchange by another client succeeded")
		}
	})
	t.Run("expired code", func(t *testing.T) {
		code, _ := e.loginCode(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice")
		e.clock.Advance(2 * time.Minute)
		if _, err := cfg.Exchange(e.ctx(t), code, oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("expired code accepted")
		}
	})
}

func TestAuthorizeRequestValidation(t *testing.T) {
	e := newEnv(t, nil)
	challenge := oauth2.S256ChallengeOption(oauth2.GenerateVerifier())
	authURL := func(client, redirect, scope string, opts ...oauth2.AuthCodeOption) string {
		c := e.oauth2(t, client, strings.Fields(scope)...)
		c.RedirectURL = redirect
		return c.AuthCodeURL("xyz", opts...)
	}
	cb := e.srv.URL + "/cb"
	tests := []struct {
		name       string
		url        string
		wantStatus int
		wantError  string // error= in the redirect; empty for pages
	}{
		{"unregistered redirect", authURL("web", "https://evil.example/cb", "openid"), 400, ""},
		{"redirect prefix trick", authURL("web", cb+"/../evil", "openid"), 400, ""},
		{"unknown client", authURL("nope", cb, "openid"), 400, ""},
		{"loopback not for confidential", authURL("web", "http://127.0.0.1:5555/callback", "openid"), 400, ""},
		{"loopback other path", authURL("cli", "http://127.0.0.1:5555/other", "openid", challenge), 400, ""},
		{"loopback any port", authURL("cli", "http://127.0.0.1:5555/callback", "openid", challenge), 200, ""},
		{"loopback registered path", authURL("cli", "http://localhost:41234/native", "openid", challenge), 200, ""},
		{"confidential without PKCE", authURL("web", cb, "openid email"), 200, ""},
		{"public without PKCE", authURL("cli", cb, "openid"), 302, "invalid_request"},
		{"plain PKCE", authURL("cli", cb, "openid", oauth2.SetAuthURLParam("code_challenge", strings.Repeat("a", 43))), 302, "invalid_request"},
		{"unknown scope", authURL("web", cb, "openid admin"), 302, "invalid_scope"},
		{"no openid", authURL("web", cb, "email"), 302, "invalid_scope"},
		{"prompt none", authURL("web", cb, "openid", oauth2.SetAuthURLParam("prompt", "none")), 302, "login_required"},
		{"token response type", authURL("web", cb, "openid", oauth2.SetAuthURLParam("response_type", "token")), 302, "unsupported_response_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.noRedirect().Get(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (Location %q)", resp.StatusCode, tt.wantStatus, loc)
			}
			if tt.wantStatus != http.StatusFound {
				if loc != "" {
					t.Errorf("redirected to %q, want no redirect", loc)
				}
				return
			}
			u, _ := url.Parse(loc)
			if !strings.HasPrefix(loc, cb+"?") || u.Query().Get("error") != tt.wantError || u.Query().Get("state") != "xyz" {
				t.Errorf("Location = %q, want %s?error=%s&state=xyz", loc, cb, tt.wantError)
			}
		})
	}
}

func TestLoginForm(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.oauth2(t, "web", "openid")
	authURL := cfg.AuthCodeURL("s")

	resp, err := e.srv.Client().Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	for header, want := range map[string]string{
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
	} {
		if got := resp.Header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}
	for _, want := range []string{`<label for="username">`, `<label for="password">`, `lang="en"`, `href="static.css"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "style=") {
		t.Errorf("login page has inline script or style")
	}

	req := e.openLogin(t, authURL)
	t.Run("wrong password re-shows form", func(t *testing.T) {
		resp := e.submitLogin(t, e.noRedirect(), req, "alice", "bob")
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.Contains(body, "Wrong username or password") {
			t.Errorf("got %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("cross-origin post refused", func(t *testing.T) {
		form := url.Values{"request": {req}, "username": {"alice"}, "password": {"alice"}}
		r, _ := http.NewRequest(http.MethodPost, e.issuer+"/auth", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "https://evil.example")
		resp, err := e.noRedirect().Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("status = %d, want 403", resp.StatusCode)
		}
	})
	t.Run("forged request token refused", func(t *testing.T) {
		resp := e.submitLogin(t, e.noRedirect(), "forged", "alice", "alice")
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Errorf("got %d Location %q, want 400 without redirect", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("right password after a wrong one, then form is used up", func(t *testing.T) {
		resp := e.submitLogin(t, e.noRedirect(), req, "alice", "alice")
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("status = %d, want 303", resp.StatusCode)
		}
		resp = e.submitLogin(t, e.noRedirect(), req, "alice", "alice")
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("reused form: status = %d, want 400", resp.StatusCode)
		}
	})
	t.Run("too many wrong passwords", func(t *testing.T) {
		req := e.openLogin(t, authURL)
		for range maxLoginTries {
			e.submitLogin(t, e.noRedirect(), req, "alice", "x").Body.Close()
		}
		resp := e.submitLogin(t, e.noRedirect(), req, "alice", "alice")
		resp.Body.Close()
		if resp.StatusCode == http.StatusSeeOther {
			t.Errorf("login succeeded after %d failures", maxLoginTries)
		}
	})
}

func TestRefreshTokenRotation(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.oauth2(t, "web", "openid", "groups", "offline_access")
	tok, err := cfg.PasswordCredentialsToken(e.ctx(t), "alice", "alice")
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("password grant: %v, refresh token %q", err, tok.RefreshToken)
	}
	refresh := func(rt string) (int, map[string]any) {
		status, body, _ := e.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
			"client_id": {"web"}, "client_secret": {webSecret}})
		return status, body
	}
	rotate := func(rt string) (string, map[string]any) {
		t.Helper()
		status, body := refresh(rt)
		next, _ := body["refresh_token"].(string)
		if status != http.StatusOK || next == "" || next == rt {
			t.Fatalf("refresh: %d %v", status, body["error"])
		}
		return next, body
	}
	next, body := rotate(tok.RefreshToken)
	idRaw, _ := body["id_token"].(string)
	if _, err := e.verifier(t, "web").Verify(t.Context(), idRaw); err != nil {
		t.Errorf("refreshed id_token: %v", err)
	}
	latest, _ := rotate(next)
	if status, body := refresh(tok.RefreshToken); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("old refresh token: %d %v, want invalid_grant", status, body["error"])
	}
	// The replay above means the family was stolen: the newest token is revoked too.
	if status, body := refresh(latest); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("newest refresh token after a replay in its family: %d %v, want invalid_grant", status, body["error"])
	}
	// Through x/oauth2's TokenSource, as a relying party would.
	tok2, err := cfg.PasswordCredentialsToken(e.ctx(t), "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	tok2.Expiry = time.Now().Add(-time.Minute)
	got, err := cfg.TokenSource(e.ctx(t), tok2).Token()
	if err != nil || got.RefreshToken == tok2.RefreshToken {
		t.Errorf("TokenSource refresh: %v", err)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	tok, err := e.oauth2(t, "web", "openid").PasswordCredentialsToken(e.ctx(t), "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	hint, _ := tok.Extra("id_token").(string)
	bye := e.srv.URL + "/bye"
	tests := []struct {
		name, query, wantLocation string
	}{
		{"client_id and registered uri", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {bye}, "state": {"s1"}}.Encode(), bye + "?state=s1"},
		{"id_token_hint", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {bye}}.Encode(), bye},
		{"unregistered uri", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://evil.example/"}}.Encode(), ""},
		{"forged hint", url.Values{"id_token_hint": {"a.b.c"}, "post_logout_redirect_uri": {bye}}.Encode(), ""},
		{"no client", url.Values{"post_logout_redirect_uri": {bye}}.Encode(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.noRedirect().Get(e.issuer + "/logout?" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			body := readBody(t, resp)
			if got := resp.Header.Get("Location"); got != tt.wantLocation {
				t.Errorf("Location = %q, want %q", got, tt.wantLocation)
			}
			if tt.wantLocation == "" && (resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed out")) {
				t.Errorf("got %d, want signed-out page", resp.StatusCode)
			}
		})
	}
}

func TestUserinfoRefusesOtherTokens(t *testing.T) {
	e := newEnv(t, nil)
	tok, err := e.oauth2(t, "web", "openid").PasswordCredentialsToken(e.ctx(t), "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := tok.Extra("id_token").(string)
	for name, auth := range map[string]string{"none": "", "garbage": "Bearer x.y.z", "id token": "Bearer " + id} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("status = %d, want 401", resp.StatusCode)
			}
		})
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.provider(t).UserInfo(e.ctx(t), oauth2.StaticTokenSource(tok)); err == nil {
		t.Error("expired access token accepted by userinfo")
	}
}

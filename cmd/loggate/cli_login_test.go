package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/cli"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// formValue pulls a hidden input's value out of a development provider page.
func formValue(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s field in page:\n%s", name, page)
	}
	return m[1]
}

func getPage(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	return string(b)
}

func readConfig(t *testing.T, ct *cliT) (cli.Config, os.FileMode) {
	t.Helper()
	p := filepath.Join(ct.env["XDG_CONFIG_HOME"], "loggate", "config.json")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("config not written: %v", err)
	}
	data, _ := os.ReadFile(p)
	var cfg cli.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, fi.Mode().Perm()
}

// TestLoginDeviceFlow signs alice in with the device grant: the test plays
// alice at the provider's verification page. Then whoami uses the stored
// token, a stale token is refreshed, and logout forgets it.
func TestLoginDeviceFlow(t *testing.T) {
	g := startGateway(t)
	ct := newCLI(t, "")
	r := ct.start("login", "--server", g.url)
	code := waitFor(t, r.stderr, `enter the code ([A-Z]{4}-[A-Z]{4})`, 20*time.Second)

	page := getPage(t, g.url+"/dev/oidc/device?user_code="+url.QueryEscape(code))
	form := url.Values{"csrf": {formValue(t, page, "csrf")}, "user_code": {code}, "username": {"alice"},
		"password": {"alice"}, "action": {"approve"}}
	resp, err := http.PostForm(g.url+"/dev/oidc/device", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("approve device code: status %d", resp.StatusCode)
	}
	if got := r.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("login exit %d\nstdout: %s\nstderr: %s", got, r.stdout, r.stderr)
	}
	if out := r.stdout.String(); !strings.Contains(out, "Signed in to "+g.url+" as Alice Example <alice@example.com>") {
		t.Errorf("login output = %q", out)
	}
	cfg, mode := readConfig(t, ct)
	if mode != 0o600 {
		t.Errorf("config mode = %o, want 600", mode)
	}
	if cfg.Server != g.url || cfg.ClientID != "loggate" || cfg.Tokens.IDToken == "" || cfg.Tokens.RefreshToken == "" {
		t.Errorf("config = server %q client %q id token set %v refresh token set %v", cfg.Server, cfg.ClientID,
			cfg.Tokens.IDToken != "", cfg.Tokens.RefreshToken != "")
	}
	for _, out := range []string{r.stdout.String(), r.stderr.String()} {
		if strings.Contains(out, cfg.Tokens.IDToken) || strings.Contains(out, cfg.Tokens.RefreshToken) {
			t.Error("login printed a token")
		}
	}

	// Other commands use the stored login; LOGGATE_SERVER is not needed.
	if out := ct.mustRun("whoami"); !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "engineers") {
		t.Errorf("whoami = %q", out)
	}

	// An expired ID token is refreshed with the refresh token and saved.
	old := cfg.Tokens.IDToken
	cfg.Tokens.Expiry = time.Now().Add(-time.Minute)
	ct2 := &cliT{t: t, env: ct.env}
	if err := ct2.build(io.Discard, io.Discard).saveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	ct.mustRun("whoami")
	cfg2, _ := readConfig(t, ct)
	if cfg2.Tokens.IDToken == old || !cfg2.Tokens.Expiry.After(time.Now()) {
		t.Errorf("token not refreshed: same token %v, expiry %v", cfg2.Tokens.IDToken == old, cfg2.Tokens.Expiry)
	}

	// Without a refresh token an expired login says how to fix it.
	cfg2.Tokens.Expiry, cfg2.Tokens.RefreshToken = time.Now().Add(-time.Minute), ""
	if err := ct2.build(io.Discard, io.Discard).saveConfig(cfg2); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := ct.run("whoami"); code != exitcode.Failure || !strings.Contains(errOut, "run `loggate login --server "+g.url+"`") {
		t.Errorf("whoami with expired login: exit %d, stderr %q", code, errOut)
	}

	if out := ct.mustRun("logout"); !strings.Contains(out, "Signed out of "+g.url) {
		t.Errorf("logout = %q", out)
	}
	if _, errOut, code := ct.run("whoami"); code != exitcode.Failure || !strings.Contains(errOut, "not signed in to "+g.url) {
		t.Errorf("whoami after logout: exit %d, stderr %q", code, errOut)
	}
}

// TestLoginLoopbackRedirect signs bob in with the authorization-code flow:
// the injected browser opener plays the browser against the provider's
// login form and follows the redirect to the CLI's loopback listener.
func TestLoginLoopbackRedirect(t *testing.T) {
	g := startGateway(t)
	ct := newCLI(t, g.url)
	browserErr := make(chan error, 1)
	opened := make(chan string, 1)
	ct.modify = func(c *cli.Env) {
		c.OpenBrowser = func(ctx context.Context, authURL string) error {
			opened <- authURL
			go func() { browserErr <- playBrowser(authURL, "bob", "bob") }()
			return nil
		}
	}
	out := ct.mustRun("login", "--flow", "browser")
	if err := <-browserErr; err != nil {
		t.Fatalf("browser: %v", err)
	}
	authURL, _ := url.Parse(<-opened)
	q := authURL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Errorf("auth URL lacks PKCE/state/nonce: %s", authURL)
	}
	if ru := q.Get("redirect_uri"); !regexp.MustCompile(`^http://127\.0\.0\.1:\d+/callback$`).MatchString(ru) {
		t.Errorf("redirect_uri = %q, want a loopback callback", ru)
	}
	if !strings.Contains(out, "as Bob Example <bob@example.com>") || !strings.Contains(out, "sre-leads") {
		t.Errorf("login output = %q", out)
	}
	if out := ct.mustRun("whoami"); !strings.Contains(out, "bob@example.com") {
		t.Errorf("whoami = %q", out)
	}
}

// TestLoginNoBrowserPrintsURL: --no-browser prints the URL and does not call
// the opener; a wrong state on the callback is ignored, not accepted.
func TestLoginNoBrowserPrintsURL(t *testing.T) {
	g := startGateway(t)
	ct := newCLI(t, g.url)
	ct.modify = func(c *cli.Env) {
		c.OpenBrowser = func(context.Context, string) error { return errors.New("opener must not be called") }
	}
	r := ct.start("login", "--flow", "browser", "--no-browser")
	authURL := waitFor(t, r.stderr, `open this URL in your browser:\n  (\S+)`, 20*time.Second)
	u, _ := url.Parse(authURL)
	callback := u.Query().Get("redirect_uri")
	resp, err := http.Get(callback + "?code=forged&state=wrong")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("callback with a wrong state: %d, want 400", resp.StatusCode)
	}
	if err := playBrowser(authURL, "carol", "carol"); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("login exit %d: %s", code, r.stderr)
	}
	if strings.Contains(r.stderr.String(), "opener must not be called") {
		t.Error("--no-browser still opened a browser")
	}
}

// playBrowser does what a person's browser does: show the login form, post
// the credentials, follow the redirect to the loopback callback.
func playBrowser(authURL, user, pass string) error {
	resp, err := http.Get(authURL)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="request" value="([^"]*)"`).FindSubmatch(body)
	if m == nil {
		return errors.New("no login form at the authorization URL: " + string(body))
	}
	base, _ := url.Parse(authURL)
	action, _ := base.Parse("auth")
	resp, err = http.PostForm(action.String(), url.Values{"request": {string(m[1])}, "username": {user}, "password": {pass}})
	if err != nil {
		return err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "signed in to loggate") {
		return errors.New("callback page: " + resp.Status + " " + string(page))
	}
	return nil
}

// TestRejectedTokenIsRenewedOnce: when the server refuses the stored ID
// token (401), the client refreshes it once with the refresh token and
// retries, so a long wait or tail outlives the ID token.
func TestRejectedTokenIsRenewedOnce(t *testing.T) {
	g := startGateway(t)
	form := url.Values{"grant_type": {"password"}, "client_id": {"loggate"}, "username": {"alice"}, "password": {"alice"},
		"scope": {"openid profile email groups offline_access"}}
	resp, err := http.PostForm(g.url+"/dev/oidc/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token from the development provider")
	}
	ct := newCLI(t, "")
	bogus := "eyJhbGciOiJub25lIn0.eyJleHAiOjk5OTk5OTk5OTl9.x" // unsigned: the server refuses it
	cfg := cli.Config{Server: g.url, Issuer: g.url + "/dev/oidc", ClientID: "loggate",
		Scopes: []string{"openid", "profile", "email", "groups", "offline_access"},
		Tokens: cli.Tokens{IDToken: bogus, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(time.Hour),
			TokenEndpoint: g.url + "/dev/oidc/token"}}
	if err := ct.build(io.Discard, io.Discard).saveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if out := ct.mustRun("whoami"); !strings.Contains(out, "alice@example.com") {
		t.Errorf("whoami = %q", out)
	}
	if got, _ := readConfig(t, ct); got.Tokens.IDToken == bogus {
		t.Error("the renewed token was not saved")
	}
}

// TestConcurrentRefreshKeepsTheSignIn: several commands find the ID token
// expired at once. The development provider rotates refresh tokens and
// revokes the family on a replay, so unserialised refreshes would sign the
// user out; with the lock every command succeeds and the sign-in survives.
func TestConcurrentRefreshKeepsTheSignIn(t *testing.T) {
	g := startGateway(t)
	form := url.Values{"grant_type": {"password"}, "client_id": {"loggate"}, "username": {"bob"}, "password": {"bob"},
		"scope": {"openid profile email groups offline_access"}}
	resp, err := http.PostForm(g.url+"/dev/oidc/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		IDToken      string `json:"id_token"`
		RefreshToken string `json:"refresh_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	ct := newCLI(t, "")
	expire := func() {
		cfg := cli.Config{Server: g.url, Issuer: g.url + "/dev/oidc", ClientID: "loggate",
			Scopes: []string{"openid", "profile", "email", "groups", "offline_access"},
			Tokens: cli.Tokens{IDToken: tok.IDToken, RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute),
				TokenEndpoint: g.url + "/dev/oidc/token"}}
		if cur, _ := readConfigIfAny(ct); cur.Tokens.RefreshToken != "" {
			cfg.Tokens = cur.Tokens
			cfg.Tokens.Expiry = time.Now().Add(-time.Minute)
		}
		if err := ct.build(io.Discard, io.Discard).saveConfig(cfg); err != nil {
			t.Fatal(err)
		}
	}
	expire()
	var runs []*runningCLI
	for range 4 {
		runs = append(runs, ct.start("whoami"))
	}
	for i, r := range runs {
		if code := r.wait(t, 30*time.Second); code != 0 {
			t.Errorf("whoami %d: exit %d: %s", i, code, r.stderr)
		}
	}
	// The stored refresh token still works afterwards.
	expire()
	if out := ct.mustRun("whoami"); !strings.Contains(out, "bob@example.com") {
		t.Errorf("whoami after concurrent refreshes = %q", out)
	}
}

func readConfigIfAny(ct *cliT) (cli.Config, error) {
	return ct.build(io.Discard, io.Discard).loadConfig()
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/loggate/loggate/auth/devidp"
	"github.com/loggate/loggate/gateway/audit"
)

// TestIdentityExternalProvider runs the gateway without --dev against a
// provider of its own (on httptest), configured the way a Google-like
// deployment is: a confidential client whose secret comes from a file, a
// public client for the CLI, no groups claim for some users (so a group
// map file supplies them), and an allowed email domain.
func TestIdentityExternalProvider(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	public := "http://" + addr

	idpSrv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + idpSrv.Listener.Addr().String() + "/oidc"
	idp, err := devidp.New(devidp.Config{Issuer: issuer,
		Users: []devidp.User{
			{Username: "dana", Password: "dana", Name: "Dana", Email: "dana@example.com"}, // no groups, like Google
			{Username: "erin", Password: "erin", Name: "Erin", Email: "erin@other.example", Groups: []string{"security"}},
		},
		Clients: []devidp.Client{
			{ID: "loggate-web", Secret: "web-secret", RedirectURIs: []string{public + "/auth/callback"}},
			{ID: "loggate-cli"},
			{ID: "other-app"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	idpSrv.Config.Handler = idp
	idpSrv.Start()
	t.Cleanup(idpSrv.Close)

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	g, _ := startGatewayArgs(t, "--listen", addr, "--data", filepath.Join(dir, "data"), "--log-level", "error",
		"--issuer", issuer, "--client-id", "loggate-web", "--client-secret-file", write("secret", "web-secret\n"),
		"--public-client-id", "loggate-cli",
		"--group-map-file", write("groups.json", `{"dana@example.com": ["security"]}`),
		"--allowed-email-domains", "example.com")

	// What a CLI needs to sign in, without authentication.
	var cc struct {
		Issuer, ClientID, DeviceEndpoint string
		Scopes                           []string
	}
	resp, err := http.Get(g.url + "/api/v1/auth/config")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	cc.Issuer, _ = raw["issuer"].(string)
	cc.ClientID, _ = raw["client_id"].(string)
	cc.DeviceEndpoint, _ = raw["device_authorization_endpoint"].(string)
	if cc.Issuer != issuer || cc.ClientID != "loggate-cli" || cc.DeviceEndpoint != issuer+"/device/code" {
		t.Errorf("auth config = %v, want issuer %s, public client loggate-cli and the device endpoint", raw, issuer)
	}
	if _, leaked := raw["client_secret"]; leaked || strings.Contains(fmt.Sprint(raw), "web-secret") {
		t.Errorf("auth config reveals the client secret: %v", raw)
	}

	// Browser: dana signs in through the confidential client; her groups come from the map.
	c := newWebClient(t, g.url, nil)
	c.idpAuth = issuer + "/auth"
	if loc := c.login("/security", "dana").Header.Get("Location"); loc != "/security" {
		t.Errorf("after login Location = %q", loc)
	}
	status, me := c.me()
	if status != http.StatusOK || !slices.Contains(me.Groups, "security") || me.ID != issuer+"|dev-dana" {
		t.Fatalf("dana via session: %d %+v, want id issuer|subject and mapped group security", status, me)
	}
	if r, b := c.do("GET", "/api/v1/audit?action=auth.login", nil, nil); r.StatusCode != http.StatusOK || !strings.Contains(b, "dev-dana") {
		t.Errorf("dana (security by mapping) reads the audit trail: %d", r.StatusCode)
	}

	// CLI: a token issued to the public client is accepted; one for another client is not.
	tokenFor := func(client, user string) string {
		t.Helper()
		resp, err := http.PostForm(issuer+"/token", url.Values{"grant_type": {"password"}, "client_id": {client},
			"username": {user}, "password": {user}, "scope": {"openid profile email"}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr tokenResponse
		if json.NewDecoder(resp.Body).Decode(&tr) != nil || tr.IDToken == "" {
			t.Fatalf("token for %s as %s: status %d", user, client, resp.StatusCode)
		}
		return tr.IDToken
	}
	dana := tokenFor("loggate-cli", "dana")
	if status, body := g.bearerStatus(dana, nil); status != http.StatusOK || !strings.Contains(body, `"security"`) {
		t.Errorf("dana's CLI token: %d %s", status, body)
	}
	if status, _ := g.bearerStatus(tokenFor("other-app", "dana"), nil); status != http.StatusUnauthorized {
		t.Errorf("token for another client: %d, want 401", status)
	}

	// erin is outside the allowed domain: refused in the browser and on the API.
	e := newWebClient(t, g.url, nil)
	e.idpAuth = issuer + "/auth"
	if r := e.loginAttempt("/", "erin"); r.StatusCode != http.StatusForbidden || setCookie(r, "loggate_session") != nil {
		t.Errorf("erin's login: %d, cookies %s; want 403 without a session", r.StatusCode, cookieNames(r))
	}
	if status, _ := g.bearerStatus(tokenFor("loggate-cli", "erin"), nil); status != http.StatusUnauthorized {
		t.Errorf("erin's CLI token: %d, want 401", status)
	}
	reasons := failedReasons(mustAudit(t, g, dana, "auth.failed"))
	if reasons["domain"] == 0 || reasons["wrong_audience"] == 0 {
		t.Errorf("auth.failed reasons = %v, want domain and wrong_audience", reasons)
	}
}

func mustAudit(t *testing.T, g *gatewayT, token, action string) []authEvent {
	t.Helper()
	evs, _ := g.auditAs(token, action)
	return evs
}

// TestIdentityFailureBurstAggregated: 200 bad tokens from one address become
// a couple of auth.failed events whose counts add up, not 200 events.
func TestIdentityFailureBurstAggregated(t *testing.T) {
	data := t.TempDir()
	g, stop := startGatewayArgs(t, devArgs(data)...)
	for i := range 200 {
		if status, _ := g.bearerStatus(fmt.Sprintf("garbage-%d", i), nil); status != http.StatusUnauthorized {
			t.Fatalf("bad token %d: status %d", i, status)
		}
	}
	stop() // flushes the aggregated count into the trail

	aud, err := audit.Open(context.Background(), audit.Config{Dir: filepath.Join(data, "audit")})
	if err != nil {
		t.Fatal(err)
	}
	defer aud.Close()
	page, err := aud.Search(context.Background(), audit.Query{Action: "auth.failed", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ev := range page.Items {
		if ev.Reason != "malformed" {
			t.Errorf("unexpected auth.failed reason %q", ev.Reason)
		}
		n := 1
		if c, ok := ev.Details["count"]; ok {
			if n, err = strconv.Atoi(fmt.Sprint(c)); err != nil {
				t.Fatalf("count %#v is not a number", c)
			}
		}
		total += n
	}
	if len(page.Items) == 0 || len(page.Items) > 3 || total != 200 {
		t.Errorf("200 failures became %d events counting %d; want 1-3 events counting 200", len(page.Items), total)
	}
}

// TestIdentitySessionKeyRotation: a new session key is added first in the
// key file and the gateway restarted; sessions sealed with the old key stay
// valid while it is listed, and end when it is removed.
func TestIdentitySessionKeyRotation(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "session.keys")
	oldKey, newKey := hex.EncodeToString([]byte(strings.Repeat("o", 32))), hex.EncodeToString([]byte(strings.Repeat("n", 32)))
	start := func(keys ...string) (*gatewayT, func()) {
		t.Helper()
		if err := os.WriteFile(keyFile, []byte("# newest first\n"+strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return startGatewayArgs(t, "--dev", "--listen", addr, "--data", filepath.Join(dir, "data"), "--dev-demo-logs=false",
			"--log-level", "error", "--session-key-file", keyFile)
	}
	g, stop := start(oldKey)
	c := newWebClient(t, g.url, nil)
	c.login("/", "alice")
	_, before := c.me()
	stop()

	g, stop = start(newKey, oldKey)
	status, me := c.me()
	if status != http.StatusOK || me.Username != "alice" {
		t.Fatalf("old-key session after adding a new key: %d, want 200", status)
	}
	// Pages opened before the rotation keep a working CSRF token.
	body := map[string]any{"service": "checkout", "env": "staging", "duration": "10m", "reason": "key rotation"}
	if r, b := c.postJSON("/api/v1/requests", body, http.Header{"X-Csrf-Token": {before.CSRFToken}}); r.StatusCode != http.StatusCreated {
		t.Errorf("CSRF token from before the rotation: %d %s", r.StatusCode, b)
	}
	stop()

	g, _ = start(newKey)
	if status, _ := c.me(); status != http.StatusUnauthorized {
		t.Errorf("old-key session after the old key is removed: %d, want 401", status)
	}
	_ = g
}

// TestIdentityGeneratedSessionKey: without --session-key-file, development
// generates one key into the data directory, readable by the owner only,
// and reuses it across restarts (sessions survive a restart).
func TestIdentityGeneratedSessionKey(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	data := t.TempDir()
	args := []string{"--dev", "--listen", addr, "--data", data, "--dev-demo-logs=false", "--log-level", "error"}
	g, stop := startGatewayArgs(t, args...)
	c := newWebClient(t, g.url, nil)
	c.login("/", "alice")
	stop()
	path := filepath.Join(data, "keys", "session.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if k, err := hex.DecodeString(strings.TrimSpace(string(b))); err != nil || len(k) < 32 {
		t.Errorf("generated key is not 32+ bytes of hex (%d bytes, %v)", len(k), err)
	}
	startGatewayArgs(t, args...)
	if status, _ := c.me(); status != http.StatusOK {
		t.Errorf("session after a restart with the generated key: %d, want 200", status)
	}
}

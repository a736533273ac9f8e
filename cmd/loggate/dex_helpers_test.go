package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Dex tests run loggate without --dev against a real Dex (the OpenID
// provider many platform teams deploy), built from the Go module proxy by
// .ci/tools/dex/build.sh. .ci/run always sets LOGGATE_DEX_BIN, so CI never
// skips them; elsewhere they skip loudly when it is unset.

// Dex's static users. Every password is dexPassword (bcrypt cost 10, the least Dex accepts).
const (
	dexPassword     = "dex-test-password"
	dexPasswordHash = "$2a$10$TunNQiueCJz9w8.mOP6Svef6uHX2Z1QyVnU/7Z25E6.dIhDm4THMe"
	dexWebClient    = "loggate-web"
	dexWebSecret    = "dex-web-client-secret"
	dexCLIClient    = "loggate-cli"
	dexOtherClient  = "other-app"
)

// dexUser is one of Dex's staticPasswords entries.
type dexUser struct {
	Email    string   `json:"email"`
	Hash     string   `json:"hash"`
	Username string   `json:"username"`
	Name     string   `json:"name,omitempty"`
	UserID   string   `json:"userID"`
	Groups   []string `json:"groups,omitempty"`
	Verified bool     `json:"emailVerified"`
}

// dexUsers mirror the development provider's demo people: alice is an
// engineer, bob leads SRE, carol is security and admin; mallory has no group.
func dexUsers() []dexUser {
	u := func(name string, groups ...string) dexUser {
		return dexUser{Email: name + "@example.com", Hash: dexPasswordHash, Username: name,
			Name: strings.ToUpper(name[:1]) + name[1:] + " Dex", UserID: "uid-" + name, Groups: groups, Verified: true}
	}
	return []dexUser{
		u("alice", "engineers"),
		u("bob", "engineers", "sre-leads", "oncall"),
		u("carol", "security", "loggate-admins"),
		u("mallory"),
	}
}

// dexT is one running Dex.
type dexT struct {
	t      *testing.T
	bin    string
	issuer string
	port   int
	dir    string
	opts   dexOptions
	cmd    *exec.Cmd
	exited chan struct{}
	out    *dexLog
}

// dexOptions shape the Dex configuration.
type dexOptions struct {
	// GatewayURL is the loggate public URL whose /auth/callback the web client may use.
	GatewayURL string
	// IDTokens is Dex's expiry.idTokens. Zero: 10m.
	IDTokens string
	// SQLite keeps Dex's state in a file (refresh tokens survive restart).
	SQLite bool
	// Users are the static users. Zero: dexUsers().
	Users []dexUser
	// SigningKeys is Dex's key rotation period. Zero: Dex's default (6h).
	SigningKeys string
}

// dexBin returns the Dex binary, skipping loudly outside CI when it is
// missing and failing under CI=true.
func dexBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("LOGGATE_DEX_BIN")
	if bin == "" {
		msg := "\n\n*** DEX TESTS NOT RUN: LOGGATE_DEX_BIN is unset. Build Dex with `.ci/tools/dex/build.sh` " +
			"(prints the binary's path) and run with LOGGATE_DEX_BIN=<that path>. .ci/run does this. ***\n"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if fi, err := os.Stat(bin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		t.Fatalf("LOGGATE_DEX_BIN=%s is not an executable file (%v)", bin, err)
	}
	return bin
}

// startDex runs Dex on a free loopback port with memory storage (or
// SQLite, o.SQLite, so refresh tokens survive restart), the static users
// (o.Users, zero: dexUsers), a confidential client for the gateway (trusting
// the CLI as a peer, so the CLI may ask for the gateway's audience), the
// CLI's public client and an unrelated client.
func startDex(t *testing.T, o dexOptions) *dexT {
	t.Helper()
	bin := dexBin(t)
	if o.IDTokens == "" {
		o.IDTokens = "10m"
	}
	port := freePort(t)
	d := &dexT{t: t, bin: bin, issuer: fmt.Sprintf("http://127.0.0.1:%d/dex", port), port: port, opts: o,
		dir: t.TempDir(), out: &dexLog{}}
	users := o.Users
	if users == nil {
		users = dexUsers()
	}
	d.launch(users)
	t.Cleanup(d.kill)
	return d
}

// restart stops Dex and starts it again on the same port and storage with
// other static users (as an operator changing the directory would).
func (d *dexT) restart(users []dexUser) {
	d.t.Helper()
	d.kill()
	d.launch(users)
}

func (d *dexT) kill() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
	if d.t.Failed() {
		d.t.Logf("dex output:\n%s", d.out.String())
	}
}

func (d *dexT) launch(users []dexUser) {
	d.t.Helper()
	o := d.opts
	storage := map[string]any{"type": "memory"}
	if o.SQLite {
		storage = map[string]any{"type": "sqlite3", "config": map[string]any{"file": filepath.Join(d.dir, "dex.db")}}
	}
	expiry := map[string]any{"idTokens": o.IDTokens, "deviceRequests": "5m"}
	if o.SigningKeys != "" {
		expiry["signingKeys"] = o.SigningKeys
	}
	cfg := map[string]any{
		"issuer":  d.issuer,
		"storage": storage,
		"web":     map[string]any{"http": fmt.Sprintf("127.0.0.1:%d", d.port)},
		"logger":  map[string]any{"level": "warn"},
		"oauth2":  map[string]any{"skipApprovalScreen": true, "passwordConnector": "local"},
		"expiry":  expiry,
		"staticClients": []map[string]any{
			{"id": dexWebClient, "name": "loggate", "secret": dexWebSecret,
				"redirectURIs": []string{o.GatewayURL + "/auth/callback"}, "trustedPeers": []string{dexCLIClient}},
			{"id": dexCLIClient, "name": "loggate CLI", "public": true},
			{"id": dexOtherClient, "name": "another app", "secret": "other-secret",
				"redirectURIs": []string{"http://127.0.0.1:1/callback"}},
		},
		"enablePasswordDB": true,
		"staticPasswords":  users,
	}
	b, err := json.MarshalIndent(cfg, "", "  ") // JSON is YAML
	if err != nil {
		d.t.Fatal(err)
	}
	path := filepath.Join(d.dir, "dex.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.cmd = exec.Command(d.bin, "serve", path)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	d.cmd.Env = append(os.Environ(), "DEX_EXPAND_ENV=false")
	if err := d.cmd.Start(); err != nil {
		d.t.Fatalf("start dex: %v", err)
	}
	exited := make(chan struct{})
	d.exited = exited
	cmd := d.cmd
	go func() { cmd.Wait(); close(exited) }()
	if !within(30*time.Second, 50*time.Millisecond, func() bool {
		// Ready once it publishes a signing key (discovery answers earlier).
		resp, err := http.Get(d.issuer + "/keys")
		if err == nil {
			var jwks struct {
				Keys []json.RawMessage `json:"keys"`
			}
			err = json.NewDecoder(resp.Body).Decode(&jwks)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK && len(jwks.Keys) > 0 {
				return true
			}
		}
		select {
		case <-exited:
			d.t.Fatalf("dex exited before it was ready:\n%s", d.out.String())
		default:
		}
		return false
	}) {
		d.t.Fatalf("dex not ready after 30s:\n%s", d.out.String())
	}
}

// passwordToken uses the password grant (Dex's local connector) as client,
// with the given scopes, and returns Dex's token response.
func (d *dexT) passwordToken(client, secret, user, scope string) (int, tokenResponse) {
	d.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user + "@example.com"}, "password": {dexPassword},
		"scope": {scope}}
	req, _ := http.NewRequest("POST", d.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(client), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	_ = json.Unmarshal(buf.Bytes(), &tr)
	return resp.StatusCode, tr
}

// cliToken is an ID token for user issued to the CLI's public client.
func (d *dexT) cliToken(user string, extraScopes ...string) string {
	d.t.Helper()
	scope := strings.Join(append([]string{"openid profile email groups offline_access"}, extraScopes...), " ")
	status, tr := d.passwordToken(dexCLIClient, "", user, scope)
	if status != http.StatusOK || tr.IDToken == "" {
		d.t.Fatalf("dex password grant for %s as %s: %d %q", user, dexCLIClient, status, tr.Error)
	}
	return tr.IDToken
}

// dexGateway is loggate serve without --dev, trusting d.
type dexGateway struct {
	*gatewayT
	dex *dexT
}

// startDexGateway starts Dex and a gateway that trusts it, wired as a
// production deployment would be: --issuer, a confidential client whose
// secret comes from a file, and the CLI's public client.
func startDexGateway(t *testing.T, o dexOptions, extra ...string) *dexGateway {
	t.Helper()
	dexBin(t) // skip before anything starts
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	o.GatewayURL = "http://" + addr
	d := startDex(t, o)
	dir := t.TempDir()
	secret := filepath.Join(dir, "client-secret")
	if err := os.WriteFile(secret, []byte(dexWebSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--listen", addr, "--data", filepath.Join(dir, "data"), "--log-level", "error",
		"--issuer", d.issuer, "--client-id", dexWebClient, "--client-secret-file", secret,
		"--public-client-id", dexCLIClient}, extra...)
	g, _ := startGatewayArgs(t, args...)
	return &dexGateway{gatewayT: g, dex: d}
}

// jwtPayload decodes a JWT's claims without verifying it (tests only).
func jwtPayload(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// dexLog collects Dex's output for failure messages.
type dexLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *dexLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *dexLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// loginAtDex is a headless browser sign-in through Dex's login form:
// /login → Dex → the password form → /auth/callback, each redirect followed
// by hand so the client's cookie jar keeps both sites' cookies.
func (d *dexT) loginAtDex(c *webClient, user string) {
	d.t.Helper()
	resp, _ := c.do("GET", "/login?next=%2F", nil, nil)
	for range 10 {
		loc := resp.Header.Get("Location")
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400 && strings.HasPrefix(loc, c.base+"/auth/callback"):
			if resp, _ = c.do("GET", loc, nil, nil); resp.StatusCode != http.StatusFound {
				d.t.Fatalf("callback for %s: %d, want 302", user, resp.StatusCode)
			}
			return
		case resp.StatusCode >= 300 && resp.StatusCode < 400:
			u, err := resp.Request.URL.Parse(loc)
			if err != nil {
				d.t.Fatal(err)
			}
			var body string
			resp, body = c.do("GET", u.String(), nil, nil)
			if resp.StatusCode == http.StatusOK && strings.Contains(body, `name="password"`) {
				resp, _ = c.do("POST", u.String(), strings.NewReader(url.Values{"login": {user + "@example.com"},
					"password": {dexPassword}}.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
			}
		default:
			d.t.Fatalf("sign-in of %s at Dex: %d at %s", user, resp.StatusCode, resp.Request.URL)
		}
	}
	d.t.Fatalf("sign-in of %s at Dex: too many redirects", user)
}

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// webClient is a browser stand-in: a cookie jar, redirects not followed (each
// hop is checked by the test), and an optional transport.
type webClient struct {
	t       *testing.T
	base    string // the gateway's public URL
	idpAuth string // the provider's authorization endpoint; zero: the development provider's
	http    *http.Client
}

func newWebClient(t *testing.T, base string, rt http.RoundTripper) *webClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &webClient{t: t, base: base, http: &http.Client{
		Jar: jar, Transport: rt, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// do sends a request (path relative to base, or an absolute URL) and returns
// the response with its body read.
func (c *webClient) do(method, target string, body io.Reader, header http.Header) (*http.Response, string) {
	c.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = c.base + target
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var loginRequestField = regexp.MustCompile(`name="request" value="([^"]+)"`)

// login walks the browser login through the development provider's form:
// GET /login?next=… → provider form → POST credentials (as the browser does,
// with the provider's Origin) → /auth/callback. It returns the callback's
// response (Set-Cookie, Location) for the caller to check.
func (c *webClient) login(next, user string) *http.Response {
	c.t.Helper()
	resp := c.loginAttempt(next, user)
	if resp.StatusCode != http.StatusFound {
		c.t.Fatalf("callback: status %d, want 302", resp.StatusCode)
	}
	return resp
}

// loginAttempt is login without judging the callback's answer.
func (c *webClient) loginAttempt(next, user string) *http.Response {
	c.t.Helper()
	idpAuth := c.idpAuth
	if idpAuth == "" {
		idpAuth = c.base + "/dev/oidc/auth"
	}
	path := "/login"
	if next != "" {
		path += "?next=" + url.QueryEscape(next)
	}
	resp, _ := c.do("GET", path, nil, nil)
	authURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(authURL, idpAuth+"?") {
		c.t.Fatalf("GET %s: %d Location %q, want 302 to the provider", path, resp.StatusCode, authURL)
	}
	for _, p := range []string{"code_challenge_method=S256", "state=", "nonce=", "redirect_uri=" + url.QueryEscape(c.base+"/auth/callback")} {
		if !strings.Contains(authURL, p) {
			c.t.Errorf("authorization URL lacks %s: %s", p, authURL)
		}
	}
	resp, form := c.do("GET", authURL, nil, nil)
	m := loginRequestField.FindStringSubmatch(form)
	if resp.StatusCode != http.StatusOK || m == nil {
		c.t.Fatalf("provider login form: %d, request field found %v", resp.StatusCode, m != nil)
	}
	au, _ := url.Parse(authURL)
	vals := url.Values{"request": {m[1]}, "username": {user}, "password": {user}}
	resp, _ = c.do("POST", au.Scheme+"://"+au.Host+au.Path, strings.NewReader(vals.Encode()), http.Header{
		"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {au.Scheme + "://" + au.Host},
		"Sec-Fetch-Site": {"same-origin"}})
	cb := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(cb, c.base+"/auth/callback?") {
		c.t.Fatalf("POST credentials: %d Location %q, want 303 to %s/auth/callback", resp.StatusCode, cb, c.base)
	}
	resp, _ = c.do("GET", cb, nil, nil)
	return resp
}

// meJSON is GET /api/v1/me.
type meJSON struct {
	ID        string   `json:"id"`
	Username  string   `json:"username"`
	Groups    []string `json:"groups"`
	Via       string   `json:"via"`
	CSRFToken string   `json:"csrf_token"`
}

func (c *webClient) me() (int, meJSON) {
	c.t.Helper()
	resp, body := c.do("GET", "/api/v1/me", nil, nil)
	var m meJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			c.t.Fatalf("/me body %q: %v", body, err)
		}
	}
	return resp.StatusCode, m
}

// postJSON sends a JSON body with the given extra headers.
func (c *webClient) postJSON(path string, body any, header http.Header) (*http.Response, string) {
	c.t.Helper()
	b, _ := json.Marshal(body)
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	return c.do("POST", path, strings.NewReader(string(b)), h)
}

// authEvent is an audit event as the API returns it, with the fields the
// identity tests look at.
type authEvent struct {
	Action     string         `json:"action"`
	Outcome    string         `json:"outcome"`
	Reason     string         `json:"reason"`
	SourceAddr string         `json:"source_addr"`
	UserAgent  string         `json:"user_agent"`
	Actor      map[string]any `json:"actor"`
	Details    map[string]any `json:"details"`
}

// count is how many failures the event stands for (1 unless aggregated).
func (e authEvent) count() int {
	if n, ok := e.Details["count"].(float64); ok {
		return int(n)
	}
	return 1
}

// auditAs reads the newest audit events with the given action as carol
// (security), returning the decoded events and the raw body.
func (g *gatewayT) auditAs(carol, action string) ([]authEvent, string) {
	g.t.Helper()
	req, _ := http.NewRequest("GET", g.url+"/api/v1/audit?limit=1000&action="+url.QueryEscape(action), nil)
	req.Header.Set("Authorization", "Bearer "+carol)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var page struct {
		Items []authEvent `json:"items"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &page) != nil {
		g.t.Fatalf("audit search %s: %d %s", action, resp.StatusCode, b)
	}
	return page.Items, string(b)
}

// failedReasons maps reason class to the failures recorded for it.
func failedReasons(evs []authEvent) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		if e.Action == "auth.failed" {
			out[e.Reason] += e.count()
		}
	}
	return out
}

// bearerStatus presents a token to GET /api/v1/me and returns the status and body.
func (g *gatewayT) bearerStatus(token string, header http.Header) (int, string) {
	g.t.Helper()
	req, _ := http.NewRequest("GET", g.url+"/api/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tokenResponse is the provider's token endpoint answer.
type tokenResponse struct {
	IDToken      string `json:"id_token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Error        string `json:"error"`
}

// grant posts a grant to the development provider's token endpoint as the
// public client and returns the status and response.
func (g *gatewayT) grant(form url.Values) (int, tokenResponse) {
	g.t.Helper()
	form.Set("client_id", devClientID)
	resp, err := http.DefaultClient.PostForm(g.url+"/dev/oidc/token", form)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr tokenResponse
	_ = json.NewDecoder(resp.Body).Decode(&tr)
	return resp.StatusCode, tr
}

// startGatewayArgs is startGateway with full control: base arguments are
// not added, and stop ends the gateway early (it is also run at cleanup),
// so a test can read the data directory after the authenticator flushed.
func startGatewayArgs(t *testing.T, args ...string) (g *gatewayT, stop func()) {
	t.Helper()
	g = startServe(t, args)
	return g, g.stop
}

// devArgs are startGateway's arguments for a data directory.
func devArgs(data string, extra ...string) []string {
	return append([]string{"--dev", "--listen", "127.0.0.1:0", "--data", data, "--dev-demo-logs=false", "--log-level", "error"}, extra...)
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// schemeRewriter lets a client use https:// URLs (so its cookie jar sends
// Secure cookies, as a browser behind a TLS terminator would) while it talks
// plain HTTP to the gateway's listener.
type schemeRewriter struct{}

func (schemeRewriter) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if r.URL.Scheme == "https" {
		r.URL.Scheme = "http"
		r.Header.Set("X-Forwarded-Proto", "https")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key to dir and
// returns their paths and a pool trusting it.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loggate test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// unsignedJWT is a token with "alg": alg and no (or a junk) signature.
func unsignedJWT(alg string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	sig := ""
	if alg != "none" {
		sig = base64.RawURLEncoding.EncodeToString([]byte("not a signature"))
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

// foreignSigned is a token signed with a key the provider never published,
// under the given key id.
func foreignSigned(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// currentKid is the key id the provider signs with now, read from a fresh token.
func currentKid(t *testing.T, token string) string {
	t.Helper()
	h, _, _ := strings.Cut(token, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	var hdr struct {
		Kid string `json:"kid"`
	}
	if err != nil || json.Unmarshal(b, &hdr) != nil || hdr.Kid == "" {
		t.Fatalf("token header %q has no kid", h)
	}
	return hdr.Kid
}

// setCookie finds a Set-Cookie of resp by name.
func setCookie(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func cookieNames(resp *http.Response) string {
	var names []string
	for _, c := range resp.Cookies() {
		names = append(names, fmt.Sprintf("%s(maxage=%d)", c.Name, c.MaxAge))
	}
	return strings.Join(names, ", ")
}

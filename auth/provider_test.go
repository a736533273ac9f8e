package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testKeys are generated once: RSA key generation is slow.
var testKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	var keys []*rsa.PrivateKey
	for range 3 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
	}
	return keys
})

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type signingKey struct {
	kid  string
	priv *rsa.PrivateKey
}

// grant is what the test provider remembers about an issued code or refresh token.
type grant struct {
	clientID  string
	nonce     string
	challenge string
	claims    map[string]any
}

// testOP is an in-test OpenID provider: discovery, JWKS, authorize, token
// (authorization_code with PKCE S256, refresh_token) and end_session.
type testOP struct {
	t     testing.TB
	srv   *httptest.Server
	clock *clock

	mu            sync.Mutex
	signer        signingKey   // signs ID tokens it issues
	published     []signingKey // served at /keys
	user          map[string]any
	codes         map[string]grant
	refresh       map[string]grant
	jwksHits      int
	idTTL         time.Duration
	nonceOverride string // when set, ID tokens from the code flow carry this nonce
	refreshFail   bool   // refresh answers invalid_grant
	refreshGroups []string
	noEndSession  bool
	down          bool // discovery answers 503
}

func newTestOP(t testing.TB, clk *clock) *testOP {
	t.Helper()
	k := testKeys()
	op := &testOP{
		t: t, clock: clk,
		signer:    signingKey{"k1", k[0]},
		published: []signingKey{{"k1", k[0]}},
		codes:     map[string]grant{}, refresh: map[string]grant{},
		idTTL: time.Hour,
		user: map[string]any{
			"sub": "u-alice", "email": "alice@example.com", "email_verified": true,
			"name": "Alice A", "preferred_username": "alice", "groups": []string{"sre", "oncall"},
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /keys", op.keys)
	mux.HandleFunc("GET /authorize", op.authorize)
	mux.HandleFunc("POST /token", op.token)
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	return op
}

func (op *testOP) issuer() string { return op.srv.URL }

func (op *testOP) discovery(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	down, noEnd := op.down, op.noEndSession
	op.mu.Unlock()
	if down {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	doc := map[string]any{
		"issuer":                                op.issuer(),
		"authorization_endpoint":                op.issuer() + "/authorize",
		"token_endpoint":                        op.issuer() + "/token",
		"jwks_uri":                              op.issuer() + "/keys",
		"device_authorization_endpoint":         op.issuer() + "/device",
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"code_challenge_methods_supported":      []string{"S256"},
	}
	if !noEnd {
		doc["end_session_endpoint"] = op.issuer() + "/end_session"
	}
	writeJSON(w, doc)
}

func (op *testOP) keys(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.jwksHits++
	var set jose.JSONWebKeySet
	for _, k := range op.published {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: "RS256", Use: "sig"})
	}
	writeJSON(w, set)
}

func (op *testOP) hits() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.jwksHits
}

// authorize issues a code at once for the configured user (no login page).
func (op *testOP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	code := randomToken()
	op.mu.Lock()
	op.codes[code] = grant{clientID: q.Get("client_id"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), claims: clone(op.user)}
	op.mu.Unlock()
	u, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	rq := u.Query()
	rq.Set("code", code)
	rq.Set("state", q.Get("state"))
	u.RawQuery = rq.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (op *testOP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	clientID, _, ok := r.BasicAuth()
	if !ok {
		clientID = r.PostForm.Get("client_id")
	}
	op.mu.Lock()
	defer op.mu.Unlock()
	var g grant
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		c, ok := op.codes[r.PostForm.Get("code")]
		delete(op.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || c.clientID != clientID || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			oauthError(w, "invalid_grant")
			return
		}
		g = c
		if op.nonceOverride != "" {
			g.nonce = op.nonceOverride
		}
	case "refresh_token":
		c, ok := op.refresh[r.PostForm.Get("refresh_token")]
		delete(op.refresh, r.PostForm.Get("refresh_token")) // rotating, single use
		if !ok || op.refreshFail {
			oauthError(w, "invalid_grant")
			return
		}
		g = c
		g.nonce = ""
		if op.refreshGroups != nil {
			g.claims["groups"] = op.refreshGroups
		}
	default:
		oauthError(w, "unsupported_grant_type")
		return
	}
	claims := clone(g.claims)
	claims["aud"] = g.clientID
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	idt := op.mintLocked(claims)
	rt := randomToken()
	op.refresh[rt] = g
	writeJSON(w, map[string]any{
		"access_token": randomToken(), "token_type": "Bearer", "expires_in": 3600,
		"refresh_token": rt, "id_token": idt,
	})
}

// mint signs claims with the current signing key, filling iss/iat/exp defaults.
func (op *testOP) mint(claims map[string]any) string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.mintLocked(claims)
}

func (op *testOP) mintLocked(claims map[string]any) string {
	c := clone(claims)
	now := op.clock.Now()
	setDefault(c, "iss", op.issuer())
	setDefault(c, "iat", now.Unix())
	setDefault(c, "exp", now.Add(op.idTTL).Unix())
	return signWith(op.t, op.signer, jose.RS256, c)
}

func signWith(t testing.TB, k signingKey, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	payload, _ := json.Marshal(stripAbsent(claims))
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatalf("serialize: %v", err)
	}
	return out
}

// unsignedJWT builds a token with the given header and claims and an arbitrary signature part.
func unsignedJWT(header, claims map[string]any, sig string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "." + sig
}

// absent marks a claim to leave out even where the minter has a default.
type absent struct{}

func stripAbsent(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if _, ok := v.(absent); !ok {
			out[k] = v
		}
	}
	return out
}

func setDefault(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

func clone(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		panic(fmt.Sprintf("encode: %v", err))
	}
}

func oauthError(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"error": code})
}

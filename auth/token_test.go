package auth

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func baseClaims() map[string]any {
	return map[string]any{
		"sub": "u-bob", "aud": "gateway", "email": "bob@example.com", "email_verified": true,
		"preferred_username": "bob", "name": "Bob B", "groups": []string{"dev", "sre"},
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	c := clone(m)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			c[kv[i].(string)] = absent{}
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

func TestVerifyTokenReasons(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PublicClientID = "loggate"
		c.ExtraAudiences = []string{"api://loggate"}
	})
	now := e.clk.Now()
	k := testKeys()
	pubDER, _ := x509.MarshalPKIXPublicKey(&k[0].PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hsSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pubPEM}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	hsClaims := with(baseClaims(), "iss", e.op.issuer(), "exp", now.Add(time.Hour).Unix())
	hsJWS, _ := hsSigner.Sign(mustJSON(t, hsClaims))
	hsToken, _ := hsJWS.CompactSerialize()

	tests := []struct {
		name       string
		token      string
		wantReason string // "" means accepted
	}{
		{"valid id token", e.op.mint(baseClaims()), ""},
		{"public client audience", e.op.mint(with(baseClaims(), "aud", "loggate")), ""},
		{"extra audience among others", e.op.mint(with(baseClaims(), "aud", []string{"other", "api://loggate"})), ""},
		{"azp of a trusted client", e.op.mint(with(baseClaims(), "aud", []string{"gateway", "loggate"}, "azp", "loggate")), ""},
		{"azp of a foreign client", e.op.mint(with(baseClaims(), "azp", "evil-app")), ReasonWrongAudience},
		{"wrong audience", e.op.mint(with(baseClaims(), "aud", "someone-else")), ReasonWrongAudience},
		{"wrong issuer", e.op.mint(with(baseClaims(), "iss", "https://evil.example")), ReasonWrongIssuer},
		{"expired beyond skew", e.op.mint(with(baseClaims(), "exp", now.Add(-2*time.Minute).Unix())), ReasonExpired},
		{"expired within skew", e.op.mint(with(baseClaims(), "exp", now.Add(-30*time.Second).Unix())), ""},
		{"not yet valid", e.op.mint(with(baseClaims(), "nbf", now.Add(10*time.Minute).Unix())), ReasonExpired},
		{"no exp", e.op.mint(with(baseClaims(), "exp", nil)), ReasonMalformed},
		{"no subject", e.op.mint(with(baseClaims(), "sub", "")), ReasonMalformed},
		{"alg none", unsignedJWT(map[string]any{"alg": "none", "typ": "JWT"}, with(hsClaims), ""), ReasonAlgNone},
		{"alg None mixed case", unsignedJWT(map[string]any{"alg": "NoNe"}, with(hsClaims), ""), ReasonAlgNone},
		{"HS256 keyed with the public key", hsToken, ReasonBadSignature},
		{"unknown key id", signWith(t, signingKey{"k-unknown", k[1]}, jose.RS256, with(hsClaims)), ReasonUnknownKey},
		{"known kid, other key's signature", signWith(t, signingKey{"k1", k[1]}, jose.RS256, with(hsClaims)), ReasonBadSignature},
		{"tampered payload", tamper(e.op.mint(baseClaims())), ReasonBadSignature},
		{"not a jwt", "hello", ReasonMalformed},
		{"garbage header", "!!!.e30.sig", ReasonMalformed},
		{"claims not an object", unsignedJWT(map[string]any{"alg": "RS256"}, nil, "x"), ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := e.bearer(tt.token)
			if got := reasonOf(err); got != tt.wantReason {
				t.Fatalf("reason = %q, want %q (err %v)", got, tt.wantReason, err)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("errors.Is(err, ErrInvalidToken) = false for %v", err)
				}
				if err.Error() != "invalid token" {
					t.Errorf("Error() = %q, want exactly %q", err.Error(), "invalid token")
				}
				return
			}
			if id.Via != "bearer" || id.TokenHash == "" || id.TokenHash == tt.token {
				t.Errorf("Via=%q TokenHash=%q, want bearer and a hash", id.Via, id.TokenHash)
			}
		})
	}
}

func TestVerifyTokenIdentity(t *testing.T) {
	e := newEnv(t, nil)
	id, err := e.a.VerifyToken(context.Background(), e.op.mint(baseClaims()))
	if err != nil {
		t.Fatalf("VerifyToken: %v", err)
	}
	want := Identity{Issuer: e.op.issuer(), Subject: "u-bob", Email: "bob@example.com", Name: "Bob B",
		Username: "bob", Groups: []string{"dev", "sre"}, Via: "bearer", TokenHash: id.TokenHash}
	if id.ID() != e.op.issuer()+"|u-bob" {
		t.Errorf("ID() = %q", id.ID())
	}
	if !slices.Equal(id.Groups, want.Groups) || id.Email != want.Email || id.Username != want.Username || id.Name != want.Name {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
	if !id.InGroup("sre") || id.InGroup("admin") {
		t.Errorf("InGroup wrong for %v", id.Groups)
	}
	if id.Display() != "bob" {
		t.Errorf("Display() = %q, want bob", id.Display())
	}
}

func TestBearerHeaderShapes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name, header string
		wantErr      error
	}{
		{"no header, no cookie", "", ErrNoCredentials},
		{"basic auth", "Basic dXNlcjpwYXNz", ErrInvalidToken},
		{"bearer without token", "Bearer ", ErrInvalidToken},
		{"lowercase scheme", "bearer " + e.op.mint(baseClaims()), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			_, err := e.a.Authenticate(r)
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	e := newEnv(t, nil)
	k := testKeys()
	if _, err := e.bearer(e.op.mint(baseClaims())); err != nil {
		t.Fatalf("token with k1: %v", err)
	}
	hits := e.op.hits()

	// The provider rotates: it publishes k2 and signs with it.
	e.op.mu.Lock()
	e.op.signer = signingKey{"k2", k[1]}
	e.op.published = []signingKey{{"k1", k[0]}, {"k2", k[1]}}
	e.op.mu.Unlock()
	e.clk.Advance(keysMinRefetch) // the last fetch was at startup
	if _, err := e.bearer(e.op.mint(baseClaims())); err != nil {
		t.Fatalf("token with new kid k2 after rotation: %v", err)
	}
	if got := e.op.hits(); got != hits+1 {
		t.Errorf("JWKS fetches = %d, want %d (one refetch for the new kid)", got, hits+1)
	}

	// A flood of random kids costs at most one refetch per keysMinRefetch.
	hits = e.op.hits()
	e.clk.Advance(keysMinRefetch)
	for i := range 20 {
		tok := signWith(t, signingKey{"random-" + string(rune('a'+i)), k[2]}, jose.RS256, with(baseClaims(), "iss", e.op.issuer(), "exp", e.clk.Now().Add(time.Hour).Unix()))
		if _, err := e.bearer(tok); reasonOf(err) != ReasonUnknownKey {
			t.Fatalf("random kid: reason %q, want unknown_key", reasonOf(err))
		}
	}
	if got := e.op.hits() - hits; got != 1 {
		t.Errorf("JWKS fetches for 20 unknown kids = %d, want 1", got)
	}

	// The provider withdraws k1: after keysMaxAge it no longer verifies.
	e.op.mu.Lock()
	e.op.published = []signingKey{{"k2", k[1]}}
	e.op.mu.Unlock()
	old := signWith(t, signingKey{"k1", k[0]}, jose.RS256, with(baseClaims(), "iss", e.op.issuer(), "exp", e.clk.Now().Add(3*time.Hour).Unix()))
	e.clk.Advance(keysMaxAge + time.Second)
	if _, err := e.bearer(old); reasonOf(err) != ReasonUnknownKey {
		t.Fatalf("withdrawn key: reason %q, want unknown_key", reasonOf(err))
	}
}

func TestGroupMappingAndDomains(t *testing.T) {
	tests := []struct {
		name       string
		mod        func(*Config)
		claims     map[string]any
		wantGroups []string
		wantReason string
	}{
		{"no groups claim, mapping by subject", func(c *Config) { c.GroupMapping = map[string][]string{"u-bob": {"approvers"}} },
			with(baseClaims(), "groups", nil), []string{"approvers"}, ""},
		{"mapping by email adds to claimed groups", func(c *Config) { c.GroupMapping = map[string][]string{"bob@example.com": {"sre", "admins"}} },
			baseClaims(), []string{"dev", "sre", "admins"}, ""},
		{"mapping by email is case-insensitive", func(c *Config) { c.GroupMapping = map[string][]string{"Bob@Example.COM": {"admins"}} },
			with(baseClaims(), "email", "BOB@example.com"), []string{"dev", "sre", "admins"}, ""},
		{"mapping by issuer|subject", func(c *Config) { c.GroupMapping = map[string][]string{c.IssuerURL + "|u-bob": {"admins"}} },
			baseClaims(), []string{"dev", "sre", "admins"}, ""},
		{"mapping by unverified email ignored", func(c *Config) { c.GroupMapping = map[string][]string{"bob@example.com": {"admins"}} },
			with(baseClaims(), "email_verified", false), []string{"dev", "sre"}, ""},
		{"custom groups claim as a string", func(c *Config) { c.GroupsClaim = "roles" },
			with(baseClaims(), "roles", "viewer"), []string{"viewer"}, ""},
		{"allowed domain", func(c *Config) { c.AllowedEmailDomains = []string{"example.com"} },
			baseClaims(), []string{"dev", "sre"}, ""},
		{"domain case-insensitive", func(c *Config) { c.AllowedEmailDomains = []string{"EXAMPLE.com"} },
			baseClaims(), []string{"dev", "sre"}, ""},
		{"other domain refused", func(c *Config) { c.AllowedEmailDomains = []string{"corp.example"} },
			baseClaims(), nil, ReasonDomain},
		{"subdomain is not the domain", func(c *Config) { c.AllowedEmailDomains = []string{"example.com"} },
			with(baseClaims(), "email", "bob@evil.example.com"), nil, ReasonDomain},
		{"two at signs refused", func(c *Config) { c.AllowedEmailDomains = []string{"example.com"} },
			with(baseClaims(), "email", "bob@evil.com@example.com"), nil, ReasonDomain},
		{"unverified email refused", func(c *Config) { c.AllowedEmailDomains = []string{"example.com"} },
			with(baseClaims(), "email_verified", false), nil, ReasonDomain},
		{"no email refused", func(c *Config) { c.AllowedEmailDomains = []string{"example.com"} },
			with(baseClaims(), "email", nil), nil, ReasonDomain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.mod)
			id, err := e.bearer(e.op.mint(tt.claims))
			if got := reasonOf(err); got != tt.wantReason {
				t.Fatalf("reason = %q, want %q", got, tt.wantReason)
			}
			if err == nil && !slices.Equal(id.Groups, tt.wantGroups) {
				t.Errorf("groups = %v, want %v", id.Groups, tt.wantGroups)
			}
		})
	}
}

func TestTokenEventOncePerToken(t *testing.T) {
	e := newEnv(t, nil)
	tok1, tok2 := e.op.mint(baseClaims()), e.op.mint(with(baseClaims(), "jti", "second"))
	for range 5 {
		for _, tok := range []string{tok1, tok2} {
			if _, err := e.bearer(tok); err != nil {
				t.Fatalf("bearer: %v", err)
			}
		}
	}
	evs := e.rec.byAction(ActionToken)
	if len(evs) != 2 {
		t.Fatalf("auth.token events = %d, want 2 (one per token)", len(evs))
	}
	if evs[0].TokenHash == evs[1].TokenHash || evs[0].TokenHash != e.a.TokenHash(tok1) {
		t.Errorf("token hashes %q, %q; want distinct, first = hash(tok1)", evs[0].TokenHash, evs[1].TokenHash)
	}
	for _, ev := range evs {
		if ev.Identity == nil || ev.Identity.Subject != "u-bob" || ev.RemoteAddr == "" {
			t.Errorf("event %+v lacks identity or address", ev)
		}
	}
}

func TestTokenAuditFailureFailsClosed(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.setRefuse(ActionToken, true)
	tok := e.op.mint(baseClaims())
	if _, err := e.bearer(tok); !errors.Is(err, ErrAudit) {
		t.Fatalf("err = %v, want ErrAudit", err)
	}
	e.rec.setRefuse(ActionToken, false)
	if _, err := e.bearer(tok); err != nil {
		t.Fatalf("after the audit store recovers: %v", err)
	}
	if n := len(e.rec.byAction(ActionToken)); n != 1 {
		t.Errorf("auth.token events = %d, want 1", n)
	}
}

func TestFailureAggregation(t *testing.T) {
	e := newEnv(t, nil)
	bad := e.op.mint(with(baseClaims(), "aud", "nope"))
	for range 100 {
		r := httptest.NewRequest(http.MethodGet, "/api", nil)
		r.RemoteAddr = "203.0.113.7:4444"
		r.Header.Set("Authorization", "Bearer "+bad)
		if _, err := e.a.Authenticate(r); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("err = %v", err)
		}
	}
	// Another address and another window are separate.
	r := httptest.NewRequest(http.MethodGet, "/api", nil)
	r.RemoteAddr = "198.51.100.1:1"
	r.Header.Set("Authorization", "Bearer "+bad)
	e.a.Authenticate(r)

	if got := len(e.rec.byAction(ActionFailed)); got != 2 {
		t.Errorf("events before the window ends = %d, want 2 (first of each address)", got)
	}
	e.a.Close() // flushes pending counts
	sums := map[string]int{}
	calls := 0
	for _, ev := range e.rec.byAction(ActionFailed) {
		calls++
		sums[ev.RemoteAddr] += ev.Count
		if ev.Reason != ReasonWrongAudience {
			t.Errorf("reason = %q, want wrong_audience", ev.Reason)
		}
	}
	if sums["203.0.113.7"] != 100 || sums["198.51.100.1"] != 1 {
		t.Errorf("counts by address = %v, want 100 and 1", sums)
	}
	if calls > 4 {
		t.Errorf("OnEvent calls = %d, want at most 4", calls)
	}
}

func TestFailureAggregationWindows(t *testing.T) {
	e := newEnv(t, nil)
	send := func(n int) {
		for range n {
			r := httptest.NewRequest(http.MethodGet, "/api", nil)
			r.Header.Set("Authorization", "Bearer junk")
			e.a.Authenticate(r)
		}
	}
	send(10)
	e.clk.Advance(11 * time.Second) // next window: the previous count is emitted by the next failure
	send(5)
	e.a.Close()
	var counts []int
	for _, ev := range e.rec.byAction(ActionFailed) {
		counts = append(counts, ev.Count)
	}
	if want := []int{1, 9, 1, 4}; !slices.Equal(counts, want) {
		t.Errorf("counts = %v, want %v", counts, want)
	}
}

func TestLazyDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	e.op.mu.Lock()
	e.op.down = true
	e.op.mu.Unlock()
	// A fresh Authenticator: New does no I/O, so it succeeds while the provider is down.
	a, err := New(e.cfg)
	if err != nil {
		t.Fatalf("New with provider down: %v", err)
	}
	defer a.Close()
	if err := a.Ready(context.Background()); !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("Ready while down = %v, want ErrProviderUnavailable", err)
	}
	e.op.mu.Lock()
	e.op.down = false
	e.op.mu.Unlock()
	if err := a.Ready(context.Background()); err == nil {
		t.Fatalf("Ready within the retry pause succeeded; want the cached failure")
	}
	e.clk.Advance(discoveryRetry)
	if err := a.Ready(context.Background()); err != nil {
		t.Fatalf("Ready after provider came up: %v", err)
	}
	cc := a.ClientConfig()
	if cc.DeviceAuthorizationEndpoint != e.op.issuer()+"/device" || cc.ClientID != "gateway" || cc.Issuer != e.op.issuer() {
		t.Errorf("ClientConfig = %+v", cc)
	}
}

func TestClientConfigPublicClient(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicClientID = "loggate" })
	cc := e.a.ClientConfig()
	if cc.ClientID != "loggate" {
		t.Errorf("client_id = %q, want loggate", cc.ClientID)
	}
	if want := []string{"openid", "profile", "email", "groups", "offline_access"}; !slices.Equal(cc.Scopes, want) {
		t.Errorf("scopes = %v, want %v", cc.Scopes, want)
	}
}

func TestNewValidates(t *testing.T) {
	good := Config{IssuerURL: "https://idp.example", ClientID: "gw", SessionKeys: [][]byte{testSessionKey}}
	tests := []struct {
		name string
		mod  func(*Config)
	}{
		{"no issuer", func(c *Config) { c.IssuerURL = "" }},
		{"no client", func(c *Config) { c.ClientID = "" }},
		{"no keys", func(c *Config) { c.SessionKeys = nil }},
		{"short key", func(c *Config) { c.SessionKeys = [][]byte{[]byte("short")} }},
		{"short rotated key", func(c *Config) { c.SessionKeys = append(c.SessionKeys, []byte("short")) }},
		{"relative redirect", func(c *Config) { c.RedirectURL = "/auth/callback" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			if a, err := New(c); err == nil {
				a.Close()
				t.Fatal("New succeeded, want an error")
			}
		})
	}
}

func tamper(tok string) string {
	hdr, payload, _ := splitJWT(tok)
	_ = hdr
	var c map[string]any
	jsonUnmarshal(payload, &c)
	c["groups"] = []string{"admins"}
	parts := splitParts(tok)
	return parts[0] + "." + b64(mustJSONAny(c)) + "." + parts[2]
}

// TestBearerTakesPrecedence: a bad bearer token is refused even when a valid
// session cookie rides along; there is no fallback to the cookie.
func TestBearerTakesPrecedence(t *testing.T) {
	e := newEnv(t, nil)
	e.login(e.browser, "/")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(e.sessionCookie(e.browser))
	if id, err := e.a.Authenticate(r); err != nil || id.Via != "session" {
		t.Fatalf("cookie alone: %+v, %v", id, err)
	}
	r.Header.Set("Authorization", "Bearer "+e.op.mint(with(baseClaims(), "aud", "other")))
	if _, err := e.a.Authenticate(r); reasonOf(err) != ReasonWrongAudience {
		t.Fatalf("bad bearer with good cookie: %v, want wrong_audience", err)
	}
}

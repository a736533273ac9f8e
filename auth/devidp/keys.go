package devidp

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// signingKey is one RSA key. retired is zero for the current key.
type signingKey struct {
	id      string
	pub     *rsa.PublicKey
	signer  map[string]jose.Signer // by "typ" header
	retired time.Time
}

const (
	typIDToken     = "JWT"
	typAccessToken = "at+jwt" // RFC 9068, so an access token is never taken for an ID token
)

func newSigningKey() (*signingKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	pubJWK := jose.JSONWebKey{Key: &priv.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	tp, err := pubJWK.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("key thumbprint: %w", err)
	}
	k := &signingKey{
		id:     base64.RawURLEncoding.EncodeToString(tp[:16]),
		pub:    &priv.PublicKey,
		signer: make(map[string]jose.Signer),
	}
	for _, typ := range []string{typIDToken, typAccessToken} {
		s, err := jose.NewSigner(
			jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: k.id, Algorithm: string(jose.RS256)}},
			(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
		)
		if err != nil {
			return nil, fmt.Errorf("new signer: %w", err)
		}
		k.signer[typ] = s
	}
	return k, nil
}

// RotateKey makes a freshly generated key the signing key. The previous key
// stays in the JWKS for Config.KeyGrace so tokens it signed still verify.
func (p *Provider) RotateKey() error {
	k, err := newSigningKey()
	if err != nil {
		return fmt.Errorf("rotate key: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[0].retired = p.now()
	p.keys = append([]*signingKey{k}, p.keys...)
	p.purgeLocked()
	p.log.Info("devidp: signing key rotated", "kid", k.id)
	return nil
}

// SignIDToken signs claims, exactly as given, as an ID token with the
// current signing key. Tests use it to present tokens the provider would
// never issue (another audience or issuer, an exp in the past) to a relying
// party that trusts this provider's keys. It is an in-process API only: no
// endpoint mints arbitrary claims.
func (p *Provider) SignIDToken(claims map[string]any) (string, error) {
	return p.sign(typIDToken, claims)
}

// Issuer is the issuer URL exactly as configured (the "iss" claim).
func (p *Provider) Issuer() string { return p.issuer }

// liveKeys returns the keys published in the JWKS, current first.
func (p *Provider) liveKeys() []*signingKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	out := []*signingKey{p.keys[0]}
	for _, k := range p.keys[1:] {
		if now.Before(k.retired.Add(p.grace)) {
			out = append(out, k)
		}
	}
	return out
}

// sign serialises claims as a compact JWS with the current key.
func (p *Provider) sign(typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal claims: %w", err)
	}
	p.mu.Lock()
	s := p.keys[0].signer[typ]
	p.mu.Unlock()
	jws, err := s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return jws.CompactSerialize()
}

var errBadToken = errors.New("invalid token")

// verify checks a token's signature against the live keys, its "typ" header
// and issuer. It does not check expiry; callers decide.
func (p *Provider) verify(raw, typ string) (map[string]any, error) {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(jws.Signatures) != 1 {
		return nil, errBadToken
	}
	h := jws.Signatures[0].Protected
	if h.ExtraHeaders[jose.HeaderType] != typ {
		return nil, errBadToken
	}
	for _, k := range p.liveKeys() {
		if k.id != h.KeyID {
			continue
		}
		payload, err := jws.Verify(k.pub)
		if err != nil {
			return nil, errBadToken
		}
		var claims map[string]any
		if err := json.Unmarshal(payload, &claims); err != nil || claims["iss"] != p.issuer {
			return nil, errBadToken
		}
		return claims, nil
	}
	return nil, errBadToken
}

func (p *Provider) handleKeys(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	var set jose.JSONWebKeySet
	for _, k := range p.liveKeys() {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: k.id, Algorithm: string(jose.RS256), Use: "sig"})
	}
	w.Header().Set("Cache-Control", "max-age=60")
	writeJSON(w, http.StatusOK, set)
}

func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, "GET, HEAD")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.issuer,
		"authorization_endpoint":                p.base + "/auth",
		"token_endpoint":                        p.base + "/token",
		"jwks_uri":                              p.base + "/keys",
		"userinfo_endpoint":                     p.base + "/userinfo",
		"device_authorization_endpoint":         p.base + "/device/code",
		"end_session_endpoint":                  p.base + "/logout",
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "password", grantDeviceCode},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
		"code_challenge_methods_supported":      []string{"S256"},
		"scopes_supported":                      knownScopes,
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp",
			"email", "email_verified", "name", "preferred_username", "groups"},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// maxTokenBytes bounds a bearer token before any parsing.
const maxTokenBytes = 16 << 10

// tokenCacheTTL bounds how long a verified bearer token is trusted without re-verification.
const tokenCacheTTL = 5 * time.Minute

// claims are the fields of a verified token the package reads.
type claims struct {
	Issuer        string          `json:"iss"`
	Subject       string          `json:"sub"`
	Audience      audience        `json:"aud"`
	AuthorizedPty string          `json:"azp"`
	Expiry        *json.Number    `json:"exp"`
	NotBefore     *json.Number    `json:"nbf"`
	Nonce         string          `json:"nonce"`
	Email         string          `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"`
	Name          string          `json:"name"`
	Username      string          `json:"preferred_username"`
}

// audience accepts both a string and an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return err
	}
	*a = l
	return nil
}

func numericTime(n *json.Number) (time.Time, bool) {
	if n == nil {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// header is the JOSE header of a compact JWS.
type header struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// splitJWT decodes the header and (unverified) payload of a compact JWS.
func splitJWT(raw string) (header, []byte, error) {
	var h header
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return h, nil, errors.New("not a compact JWS")
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return h, nil, errors.New("header is not base64url")
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return h, nil, errors.New("header is not JSON")
	}
	pb, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return h, nil, errors.New("payload is not base64url")
	}
	return h, pb, nil
}

// TokenHash is the keyed hash of a bearer token used for audit correlation.
func (a *Authenticator) TokenHash(raw string) string {
	m := hmac.New(sha256.New, a.hashKey)
	m.Write([]byte(raw))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// VerifyToken verifies a bearer token (an ID token or a JWT access token whose
// audience is accepted) and returns the identity it names. Errors are
// *TokenError (errors.Is ErrInvalidToken), ErrProviderUnavailable or ErrAudit.
// It emits auth.token once per token (bounded cache), and does not emit
// auth.failed: Authenticate does, with the request's address.
func (a *Authenticator) VerifyToken(ctx context.Context, raw string) (Identity, error) {
	return a.verifyBearer(ctx, raw, nil)
}

func (a *Authenticator) verifyBearer(ctx context.Context, raw string, r *http.Request) (Identity, error) {
	now := a.now()
	hash := a.TokenHash(raw)
	key := sha256.Sum256([]byte(raw))
	if e, ok := a.tokens.get(key, now); ok {
		return a.announce(ctx, key, e, r)
	}
	id, exp, err := a.verifyToken(ctx, raw, now)
	if err != nil {
		return Identity{}, err
	}
	id.Via, id.TokenHash = "bearer", hash
	until := now.Add(tokenCacheTTL)
	if exp.Add(a.cfg.ClockSkew).Before(until) {
		until = exp.Add(a.cfg.ClockSkew)
	}
	e := a.tokens.put(key, id, until)
	return a.announce(ctx, key, e, r)
}

// announce emits auth.token the first time a token is seen.
func (a *Authenticator) announce(ctx context.Context, key [32]byte, e tokenEntry, r *http.Request) (Identity, error) {
	if e.announced {
		return e.id, nil
	}
	id := e.id
	ev := Event{Action: ActionToken, Identity: &id, TokenHash: id.TokenHash}
	if r != nil {
		ev.RemoteAddr, ev.UserAgent = a.cfg.ClientAddr(r), truncate(r.UserAgent(), 256)
	}
	if err := a.emit(ctx, ev); err != nil {
		a.log.Error("audit auth.token failed", "err", err)
		return Identity{}, err
	}
	a.tokens.markAnnounced(key)
	return id, nil
}

// verifyToken does the cryptographic and claim checks; it returns the identity
// (without Via/TokenHash) and the token's expiry.
func (a *Authenticator) verifyToken(ctx context.Context, raw string, now time.Time) (Identity, time.Time, error) {
	if len(raw) > maxTokenBytes {
		return Identity{}, time.Time{}, tokenErr(ReasonMalformed, "token longer than %d bytes", maxTokenBytes)
	}
	hdr, payload, err := splitJWT(raw)
	if err != nil {
		return Identity{}, time.Time{}, tokenErr(ReasonMalformed, "%v", err)
	}
	switch alg := hdr.Alg; {
	case strings.EqualFold(alg, "none") || alg == "":
		return Identity{}, time.Time{}, tokenErr(ReasonAlgNone, "unsigned token (alg %q)", alg)
	case strings.HasPrefix(strings.ToUpper(alg), "HS"):
		return Identity{}, time.Time{}, tokenErr(ReasonBadSignature, "symmetric algorithm %q refused", alg)
	case !slices.Contains(asymmetricAlgs, alg):
		return Identity{}, time.Time{}, tokenErr(ReasonBadSignature, "algorithm %q not supported", alg)
	}
	var unverified claims
	if err := json.Unmarshal(payload, &unverified); err != nil {
		return Identity{}, time.Time{}, tokenErr(ReasonMalformed, "claims are not a JSON object")
	}
	p, err := a.provider(ctx)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if !slices.Contains(p.algs, hdr.Alg) {
		return Identity{}, time.Time{}, tokenErr(ReasonBadSignature, "algorithm %q not offered by the provider", hdr.Alg)
	}
	// Pick the verifier for an accepted audience the token names; if it names
	// none, the primary verifier refuses it (after checking the signature).
	v := p.verifiers[a.cfg.ClientID]
	for _, aud := range a.audiences {
		if slices.Contains(unverified.Audience, aud) {
			v = p.verifiers[aud]
			break
		}
	}
	idt, c, err := a.verifyWith(ctx, v, p, raw, now)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	id, err := a.identity(idt.Issuer, c, idt)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	return id, idt.Expiry, nil
}

// verifyWith runs the go-oidc verifier and the checks it leaves to the caller
// (expiry with skew, nbf, azp, subject), mapping failures to reason classes.
func (a *Authenticator) verifyWith(ctx context.Context, v *oidc.IDTokenVerifier, p *provider, raw string, now time.Time) (*oidc.IDToken, claims, error) {
	var c claims
	slot := &keyFailure{}
	idt, err := v.Verify(context.WithValue(a.clientCtx(ctx), keyFailureKey{}, slot), raw)
	if err != nil {
		return nil, c, a.classify(err, slot, raw)
	}
	if err := idt.Claims(&c); err != nil {
		return nil, c, tokenErr(ReasonMalformed, "claims do not decode")
	}
	if c.Subject == "" {
		return nil, c, tokenErr(ReasonMalformed, "no subject")
	}
	exp, ok := numericTime(c.Expiry)
	if !ok {
		return nil, c, tokenErr(ReasonMalformed, "no exp claim")
	}
	if now.After(exp.Add(a.cfg.ClockSkew)) {
		return nil, c, tokenErr(ReasonExpired, "expired at %s", exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := numericTime(c.NotBefore); ok && nbf.After(now.Add(a.cfg.ClockSkew)) {
		return nil, c, tokenErr(ReasonExpired, "not valid before %s", nbf.UTC().Format(time.RFC3339))
	}
	// azp, when present, must be a client the gateway trusts (go-oidc does not check it).
	if c.AuthorizedPty != "" && !slices.Contains(a.audiences, c.AuthorizedPty) {
		return nil, c, tokenErr(ReasonWrongAudience, "authorized party %q not accepted", c.AuthorizedPty)
	}
	return idt, c, nil
}

// classify maps a go-oidc verification error to a reason class. The key set
// reports signature failures through slot; the remaining checks (issuer,
// audience) are re-done on the now signature-verified claims, because go-oidc
// returns them as untyped errors.
func (a *Authenticator) classify(err error, slot *keyFailure, raw string) error {
	var expired *oidc.TokenExpiredError
	keyErr := slot.err
	switch {
	case errors.Is(keyErr, errUnknownKey):
		return tokenErr(ReasonUnknownKey, "no provider key matches the token's key id")
	case errors.Is(keyErr, errBadSignature):
		return tokenErr(ReasonBadSignature, "signature does not verify")
	case errors.Is(keyErr, ErrProviderUnavailable):
		return keyErr
	case keyErr != nil:
		return tokenErr(ReasonMalformed, "unparseable JWS")
	case errors.As(err, &expired):
		return tokenErr(ReasonExpired, "expired")
	case !slot.verified:
		return tokenErr(ReasonMalformed, "unparseable JWS")
	}
	_, payload, perr := splitJWT(raw)
	var c claims
	if perr != nil || json.Unmarshal(payload, &c) != nil {
		return tokenErr(ReasonMalformed, "claims do not decode")
	}
	if c.Issuer != a.cfg.IssuerURL {
		return tokenErr(ReasonWrongIssuer, "issuer not accepted")
	}
	for _, aud := range a.audiences {
		if slices.Contains(c.Audience, aud) {
			return tokenErr(ReasonMalformed, "token refused by verifier")
		}
	}
	return tokenErr(ReasonWrongAudience, "no accepted audience")
}

// identity builds an Identity from verified claims: groups claim, group
// mapping, and the email-domain restriction.
func (a *Authenticator) identity(issuer string, c claims, idt *oidc.IDToken) (Identity, error) {
	id := Identity{Issuer: issuer, Subject: c.Subject, Email: c.Email, Name: c.Name, Username: c.Username}
	var all map[string]json.RawMessage
	if err := idt.Claims(&all); err != nil {
		return Identity{}, tokenErr(ReasonMalformed, "claims do not decode")
	}
	id.Groups = parseGroups(all[a.cfg.GroupsClaim])
	verified := emailVerified(c.EmailVerified)
	id.Groups = appendUnique(id.Groups, a.cfg.GroupMapping[id.Subject]...)
	id.Groups = appendUnique(id.Groups, a.cfg.GroupMapping[id.ID()]...)
	if id.Email != "" && verified {
		id.Groups = appendUnique(id.Groups, a.byEmail[strings.ToLower(id.Email)]...)
	}
	if len(a.cfg.AllowedEmailDomains) > 0 {
		if id.Email == "" || !verified {
			return Identity{}, tokenErr(ReasonDomain, "no verified email")
		}
		if !a.domainAllowed(id.Email) {
			return Identity{}, tokenErr(ReasonDomain, "email domain not allowed")
		}
	}
	return id, nil
}

func (a *Authenticator) domainAllowed(email string) bool {
	if strings.Count(email, "@") != 1 {
		return false
	}
	domain := email[strings.IndexByte(email, '@')+1:]
	for _, d := range a.cfg.AllowedEmailDomains {
		if strings.EqualFold(domain, strings.TrimPrefix(d, "@")) {
			return true
		}
	}
	return false
}

// emailVerified is false only when the claim says so explicitly (true, "true" or absent are verified).
func emailVerified(raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return true
	}
	var b bool
	if json.Unmarshal(raw, &b) == nil {
		return b
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.EqualFold(s, "true")
	}
	return false
}

// parseGroups accepts an array of strings (non-strings skipped) or a single string.
func parseGroups(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil
		}
		return []string{one}
	}
	var list []any
	if json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, g := range list {
		if s, ok := g.(string); ok && s != "" {
			out = appendUnique(out, s)
		}
	}
	return out
}

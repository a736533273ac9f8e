package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"
)

// OpenID Connect Back-Channel Logout 1.0: the provider POSTs a signed
// logout token naming a subject and/or a provider session (sid); the
// relying party verifies it and ends the matching sessions.

// backchannelEvent is the member the events claim must hold (spec §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// maxLogoutTokenAge bounds how old a logout token's iat may be.
const maxLogoutTokenAge = 10 * time.Minute

// Reason classes of refused logout tokens (besides the token ones such as
// expired, bad_signature, unknown_key, wrong_issuer, wrong_audience).
const (
	ReasonLogoutToken    = "logout_token"    // a claim the spec requires is missing or forbidden
	ReasonReplay         = "replay"          // the jti was seen before
	ReasonUnknownSession = "unknown_session" // no session matches sub/sid
)

// LogoutRequest is a verified logout token: end the sessions of Subject
// (if set) that belong to provider session SID (if set).
type LogoutRequest struct {
	Issuer  string
	Subject string
	SID     string
	JTI     string
}

// UserID is issuer|subject ("" when the token names only a sid).
func (l LogoutRequest) UserID() string {
	if l.Subject == "" {
		return ""
	}
	return l.Issuer + "|" + l.Subject
}

// Matches reports whether a session record is one the token ends.
func (l LogoutRequest) Matches(rec SessionRecord) bool {
	if l.Subject != "" && rec.UserID != l.UserID() {
		return false
	}
	if l.SID != "" && rec.ProviderSID != l.SID {
		return false
	}
	return true
}

// VerifyLogoutToken verifies a back-channel logout token as the spec says:
// signature by the provider's keys (asymmetric algorithms only), iss, aud
// naming the gateway's client, exp and iat, the events claim with the
// back-channel logout member, no nonce, a jti never seen before (shared by
// replicas through Config.ConsumeOnce), and sub or sid. A refusal is a
// *TokenError whose Reason says why, and is reported as auth.failed with
// r's address. ErrProviderUnavailable when keys or the replay store fail.
func (a *Authenticator) VerifyLogoutToken(ctx context.Context, r *http.Request, raw string) (LogoutRequest, error) {
	lr, err := a.verifyLogout(ctx, raw)
	var te *TokenError
	if errors.As(err, &te) {
		a.fail(r, te.Reason, "logout token: "+te.Detail, a.TokenHash(raw))
	}
	return lr, err
}

func (a *Authenticator) verifyLogout(ctx context.Context, raw string) (LogoutRequest, error) {
	now := a.now()
	if raw == "" {
		return LogoutRequest{}, tokenErr(ReasonMalformed, "no logout_token")
	}
	if len(raw) > maxTokenBytes {
		return LogoutRequest{}, tokenErr(ReasonMalformed, "token longer than %d bytes", maxTokenBytes)
	}
	hdr, _, err := splitJWT(raw)
	if err != nil {
		return LogoutRequest{}, tokenErr(ReasonMalformed, "%v", err)
	}
	switch alg := hdr.Alg; {
	case strings.EqualFold(alg, "none") || alg == "":
		return LogoutRequest{}, tokenErr(ReasonAlgNone, "unsigned token (alg %q)", alg)
	case !slices.Contains(asymmetricAlgs, alg):
		return LogoutRequest{}, tokenErr(ReasonBadSignature, "algorithm %q refused", alg)
	}
	p, err := a.provider(ctx)
	if err != nil {
		return LogoutRequest{}, err
	}
	// The gateway's own client id is the audience (go-oidc checks iss, aud,
	// exp and the signature; classify names the failure).
	slot := &keyFailure{}
	idt, err := p.verifiers[a.cfg.ClientID].Verify(context.WithValue(a.clientCtx(ctx), keyFailureKey{}, slot), raw)
	if err != nil {
		return LogoutRequest{}, a.classify(err, slot, raw)
	}
	var c struct {
		Subject  string                     `json:"sub"`
		SID      string                     `json:"sid"`
		JTI      string                     `json:"jti"`
		IssuedAt *json.Number               `json:"iat"`
		Expiry   *json.Number               `json:"exp"`
		Nonce    *json.RawMessage           `json:"nonce"`
		Events   map[string]json.RawMessage `json:"events"`
	}
	if err := idt.Claims(&c); err != nil {
		return LogoutRequest{}, tokenErr(ReasonMalformed, "claims do not decode")
	}
	exp, ok := numericTime(c.Expiry)
	if !ok {
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "no exp claim")
	}
	if now.After(exp.Add(a.cfg.ClockSkew)) {
		return LogoutRequest{}, tokenErr(ReasonExpired, "expired at %s", exp.UTC().Format(time.RFC3339))
	}
	iat, ok := numericTime(c.IssuedAt)
	switch {
	case !ok:
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "no iat claim")
	case iat.After(now.Add(a.cfg.ClockSkew)):
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "issued in the future")
	case now.Sub(iat) > maxLogoutTokenAge+a.cfg.ClockSkew:
		return LogoutRequest{}, tokenErr(ReasonExpired, "issued more than %s ago", maxLogoutTokenAge)
	}
	if c.Nonce != nil {
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "a logout token must not carry a nonce")
	}
	ev, ok := c.Events[backchannelEvent]
	var obj map[string]json.RawMessage
	if !ok || json.Unmarshal(ev, &obj) != nil {
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "events claim lacks the back-channel logout event")
	}
	if c.JTI == "" {
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "no jti claim")
	}
	if c.Subject == "" && c.SID == "" {
		return LogoutRequest{}, tokenErr(ReasonLogoutToken, "neither sub nor sid")
	}
	sum := sha256.Sum256([]byte(idt.Issuer + "\x00" + c.JTI))
	key := "logout-jti:" + hex.EncodeToString(sum[:])
	until := exp.Add(a.cfg.ClockSkew)
	if lim := iat.Add(maxLogoutTokenAge + 2*a.cfg.ClockSkew); lim.After(until) {
		until = lim
	}
	first := true
	if a.cfg.ConsumeOnce != nil {
		if first, err = a.cfg.ConsumeOnce(ctx, key, until); err != nil {
			return LogoutRequest{}, errSessionStore(err)
		}
	} else {
		first = a.usedState.consume(key, until, now)
	}
	if !first {
		return LogoutRequest{}, tokenErr(ReasonReplay, "jti already used")
	}
	return LogoutRequest{Issuer: idt.Issuer, Subject: c.Subject, SID: c.SID, JTI: truncate(c.JTI, 256)}, nil
}

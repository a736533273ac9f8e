package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// flowTTL bounds a login from redirect to callback.
const flowTTL = 10 * time.Minute

// flow is the content of the login-flow cookie.
type flow struct {
	State    string `json:"st"`
	Nonce    string `json:"no"`
	Verifier string `json:"pk"`
	Next     string `json:"nx"`
	Expires  int64  `json:"exp"`
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SafeNext returns next if it is a local absolute path that cannot leave the
// site, else "/". Refused: anything not starting with "/", a scheme or host,
// "//" anywhere, backslashes, dot segments, control, whitespace and
// line-separator characters, fragments, and any of these hidden behind
// percent-encoding.
func SafeNext(next string) string {
	if !safePath(next) {
		return "/"
	}
	// An encoded "//" or "\" (e.g. /%2F%2Fevil.com, /%5Cevil) must not turn
	// dangerous after a later unescape: check every decoding level.
	for cur := next; strings.Contains(cur, "%"); {
		dec, err := url.PathUnescape(cur)
		if err != nil || !safePath(dec) {
			return "/"
		}
		if dec == cur {
			break
		}
		cur = dec
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "/"
	}
	return next
}

func safePath(p string) bool {
	if p == "" || len(p) > 2048 || p[0] != '/' {
		return false
	}
	for _, r := range p {
		if r < 0x21 || r == 0x7f || r == '\\' || r == '#' || (r >= 0x80 && r <= 0x9f) ||
			r == '\u2028' || r == '\u2029' || r == '\ufeff' || r == '\ufffd' {
			return false
		}
	}
	path, _, _ := strings.Cut(p, "?")
	if strings.Contains(path, "//") {
		return false
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// HandleLogin starts a browser login: GET /login?next=/local/path. It stores
// state, nonce and the PKCE verifier in a short-lived encrypted cookie and
// redirects to the provider.
func (a *Authenticator) HandleLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p, err := a.provider(r.Context())
	if err != nil {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return
	}
	f := flow{
		State:    randomToken(),
		Nonce:    randomToken(),
		Verifier: oauth2.GenerateVerifier(),
		Next:     SafeNext(r.URL.Query().Get("next")),
		Expires:  a.now().Add(flowTTL).Unix(),
	}
	v, err := a.seal(purposeFlow, &f)
	if err != nil {
		http.Error(w, "login failed", http.StatusInternalServerError)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: a.flowCookieName(), Value: v, Path: "/", MaxAge: int(flowTTL / time.Second),
		HttpOnly: true, Secure: a.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	target := p.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, target, http.StatusFound)
}

// loginFailed answers a refused callback without detail.
func (a *Authenticator) loginFailed(w http.ResponseWriter, r *http.Request, status int, reason, detail string) {
	a.fail(r, reason, detail, "")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "login failed", status)
}

// HandleCallback completes a browser login: GET /auth/callback. It checks
// state (constant time, single use), exchanges the code with the PKCE
// verifier, verifies the ID token and its nonce, builds the identity, emits
// auth.login (failing closed), sets a fresh session cookie and redirects to
// the validated next path.
func (a *Authenticator) HandleCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	now := a.now()
	a.clearCookie(w, a.flowCookieName())
	q := r.URL.Query()
	if e := q.Get("error"); e != "" {
		a.loginFailed(w, r, http.StatusForbidden, ReasonProvider, "provider returned error "+truncate(safeText(e), 64))
		return
	}
	var f flow
	c, err := r.Cookie(a.flowCookieName())
	if err != nil || a.open(purposeFlow, c.Value, &f) != nil {
		a.loginFailed(w, r, http.StatusBadRequest, ReasonState, "no valid login flow cookie")
		return
	}
	if now.After(time.Unix(f.Expires, 0)) {
		a.loginFailed(w, r, http.StatusBadRequest, ReasonState, "login flow expired")
		return
	}
	state := q.Get("state")
	if state == "" || subtle.ConstantTimeCompare([]byte(state), []byte(f.State)) != 1 {
		a.loginFailed(w, r, http.StatusBadRequest, ReasonState, "state mismatch")
		return
	}
	sum := sha256.Sum256([]byte(f.State))
	first := true
	if a.cfg.ConsumeOnce != nil {
		var err error
		if first, err = a.cfg.ConsumeOnce(ctx, "login-state:"+hex.EncodeToString(sum[:]), time.Unix(f.Expires, 0)); err != nil {
			a.loginFailed(w, r, http.StatusServiceUnavailable, ReasonProvider, "login state store unavailable")
			return
		}
	} else {
		first = a.usedState.consume(hex.EncodeToString(sum[:]), time.Unix(f.Expires, 0), now)
	}
	if !first {
		a.loginFailed(w, r, http.StatusBadRequest, ReasonState, "state already used")
		return
	}
	code := q.Get("code")
	if code == "" {
		a.loginFailed(w, r, http.StatusBadRequest, ReasonProvider, "no code")
		return
	}
	p, err := a.provider(ctx)
	if err != nil {
		http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		return
	}
	tok, err := p.oauth.Exchange(a.clientCtx(ctx), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		detail := "code exchange failed"
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			detail += " (" + truncate(safeText(re.ErrorCode), 64) + ")"
		}
		a.log.Warn("code exchange failed", "err", err)
		a.loginFailed(w, r, http.StatusBadGateway, ReasonProvider, detail)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		a.loginFailed(w, r, http.StatusBadGateway, ReasonProvider, "token response has no id_token")
		return
	}
	idt, cl, err := a.verifyWith(ctx, p.verifiers[a.cfg.ClientID], p, raw, now)
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) {
			a.loginFailed(w, r, http.StatusForbidden, te.Reason, "ID token: "+te.Detail)
		} else {
			http.Error(w, "identity provider unavailable", http.StatusServiceUnavailable)
		}
		return
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		a.loginFailed(w, r, http.StatusForbidden, ReasonNonce, "nonce mismatch")
		return
	}
	if len(idt.Audience) > 1 && cl.AuthorizedPty != a.cfg.ClientID {
		a.loginFailed(w, r, http.StatusForbidden, ReasonWrongAudience, "azp is not this client")
		return
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			a.loginFailed(w, r, http.StatusForbidden, ReasonBadSignature, "at_hash mismatch")
			return
		}
	}
	id, err := a.identity(idt.Issuer, cl, idt)
	if err != nil {
		var te *TokenError
		errors.As(err, &te)
		a.loginFailed(w, r, http.StatusForbidden, te.Reason, te.Detail)
		return
	}
	s := &session{
		ID: newSessionID(), Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Name: id.Name,
		Username: id.Username, Groups: id.Groups, Issued: now.Unix(), Seen: now.Unix(),
		Absolute: now.Add(a.cfg.SessionAbsolute).Unix(), TokenExp: idt.Expiry.Unix(),
		Refresh: tok.RefreshToken, IDToken: raw,
	}
	if _, err := a.sealSession(s); err != nil {
		a.loginFailed(w, r, http.StatusForbidden, ReasonTooLarge, "session does not fit a cookie")
		return
	}
	full := s.identity()
	if err := a.emit(ctx, Event{Action: ActionLogin, Identity: &full,
		RemoteAddr: a.cfg.ClientAddr(r), UserAgent: truncate(r.UserAgent(), 256)}); err != nil {
		a.log.Error("audit auth.login failed; login refused", "err", err)
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "login failed", http.StatusServiceUnavailable)
		return
	}
	if a.cfg.Sessions != nil {
		var sc struct {
			SID string `json:"sid"`
		}
		_ = idt.Claims(&sc)
		rec := SessionRecord{ID: SessionHandle(s.ID), UserID: full.ID(), Display: full.Display(),
			ProviderSID: truncate(sc.SID, 256), Created: now, Expires: time.Unix(s.Absolute, 0),
			RemoteAddr: a.cfg.ClientAddr(r), UserAgent: truncate(r.UserAgent(), 256),
			Refresh: a.sealRefresh(tok.RefreshToken)}
		if err := a.cfg.Sessions.Put(ctx, rec); err != nil {
			a.log.Error("store session record failed; login refused", "err", err)
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "login failed", http.StatusServiceUnavailable)
			return
		}
	}
	if err := a.setSessionCookie(w, s); err != nil {
		http.Error(w, "login failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, SafeNext(f.Next), http.StatusFound)
}

// HandleLogout ends the browser session: POST /logout with a CSRF token. It
// clears the cookie and redirects to the provider's end_session_endpoint when
// discovery offers one, else to "/".
func (a *Authenticator) HandleLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s, err := a.readSession(r)
	if err == nil {
		if err := a.CheckCSRF(r); err != nil {
			// The UI calls this with fetch: answer in the API's error shape.
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"missing or invalid CSRF token","code":"forbidden"}` + "\n"))
			return
		}
	}
	a.clearCookie(w, a.sessionCookieName())
	w.Header().Set("Cache-Control", "no-store")
	target := "/"
	if s != nil && a.cfg.Sessions != nil {
		if _, err := a.cfg.Sessions.Delete(r.Context(), SessionHandle(s.ID)); err != nil {
			a.log.Error("delete session record failed", "err", err) // the cookie is cleared regardless
		}
	}
	if s != nil {
		id := s.identity()
		if err := a.emit(r.Context(), Event{Action: ActionLogout, Identity: &id,
			RemoteAddr: a.cfg.ClientAddr(r), UserAgent: truncate(r.UserAgent(), 256)}); err != nil {
			a.log.Error("audit auth.logout failed", "err", err) // the cookie is cleared regardless
		}
		if p, err := a.provider(r.Context()); err == nil && p.endSession != "" {
			if u, err := url.Parse(p.endSession); err == nil {
				q := u.Query()
				if s.IDToken != "" {
					q.Set("id_token_hint", s.IDToken)
				}
				q.Set("client_id", a.cfg.ClientID)
				if a.publicURL != "" {
					q.Set("post_logout_redirect_uri", a.publicURL)
				}
				u.RawQuery = q.Encode()
				target = u.String()
			}
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// safeText keeps printable ASCII only, for provider-supplied error codes.
func safeText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return -1
		}
		return r
	}, s)
}

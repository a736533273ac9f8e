package auth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Cookie format (both the session and the login-flow cookie):
//
//	base64url-nopad( version(1) | keyID(4) | nonce(12) | AES-256-GCM(json) )
//
// version is 1. keyID is the first 4 bytes of HKDF(secret, "loggate/auth key id v1"),
// so any key in Config.SessionKeys opens cookies it sealed, whatever its position.
// The AES key is HKDF-SHA256(secret, info "loggate/auth cookie v1"). The
// additional data is the purpose ("session" or "flow") followed by version and
// keyID, so a flow cookie can never be replayed as a session cookie.
const (
	cookieVersion = 1
	// maxCookieValue keeps the whole Set-Cookie line under 4096 bytes.
	maxCookieValue = 3800
	purposeSession = "session"
	purposeFlow    = "flow"
)

var errCookie = errors.New("cookie does not open")

type sessionKey struct {
	id   [4]byte
	aead cipher.AEAD
}

func newSessionKey(secret []byte) (sessionKey, error) {
	var sk sessionKey
	enc, err := hkdf.Key(sha256.New, secret, nil, "loggate/auth cookie v1", 32)
	if err != nil {
		return sk, err
	}
	id, err := hkdf.Key(sha256.New, secret, nil, "loggate/auth key id v1", 4)
	if err != nil {
		return sk, err
	}
	copy(sk.id[:], id)
	block, err := aes.NewCipher(enc)
	if err != nil {
		return sk, err
	}
	sk.aead, err = cipher.NewGCM(block)
	return sk, err
}

func additionalData(purpose string, prefix []byte) []byte {
	return append([]byte(purpose+"\x00"), prefix...)
}

// seal encrypts v with the first session key.
func (a *Authenticator) seal(purpose string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode %s cookie: %w", purpose, err)
	}
	k := a.keys[0]
	buf := make([]byte, 0, 1+4+12+len(plain)+k.aead.Overhead())
	buf = append(buf, cookieVersion)
	buf = append(buf, k.id[:]...)
	nonce := make([]byte, k.aead.NonceSize())
	rand.Read(nonce)
	buf = append(buf, nonce...)
	buf = k.aead.Seal(buf, nonce, plain, additionalData(purpose, buf[:5]))
	return base64.RawURLEncoding.EncodeToString(buf), nil
}

// open decrypts a cookie value sealed by any configured key into v.
func (a *Authenticator) open(purpose, value string, v any) error {
	if len(value) > 2*maxCookieValue {
		return errCookie
	}
	buf, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(buf) < 1+4+12+16 || buf[0] != cookieVersion {
		return errCookie
	}
	for _, k := range a.keys {
		if !bytes.Equal(k.id[:], buf[1:5]) {
			continue
		}
		plain, err := k.aead.Open(nil, buf[5:17], buf[17:], additionalData(purpose, buf[:5]))
		if err != nil {
			return errCookie
		}
		if err := json.Unmarshal(plain, v); err != nil {
			return errCookie
		}
		return nil
	}
	return errCookie
}

// session is the content of the session cookie. Times are Unix seconds.
type session struct {
	ID       string   `json:"sid"`
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Email    string   `json:"em,omitempty"`
	Name     string   `json:"nm,omitempty"`
	Username string   `json:"un,omitempty"`
	Groups   []string `json:"gr,omitempty"`
	Issued   int64    `json:"iat"`
	Seen     int64    `json:"seen"`
	Absolute int64    `json:"abs"`
	TokenExp int64    `json:"texp"`          // ID token expiry: refresh (or re-login) after it
	Refresh  string   `json:"rt,omitempty"`  // refresh token
	IDToken  string   `json:"idt,omitempty"` // raw ID token for id_token_hint; dropped if the cookie would be too large
}

func (s *session) identity() Identity {
	return Identity{
		Issuer: s.Issuer, Subject: s.Subject, Email: s.Email, Name: s.Name, Username: s.Username,
		Groups: append([]string(nil), s.Groups...), Via: "session", SessionID: s.ID,
	}
}

func newSessionID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (a *Authenticator) sessionCookieName() string {
	if a.cfg.SecureCookies {
		return "__Host-loggate_session"
	}
	return "loggate_session"
}

func (a *Authenticator) flowCookieName() string {
	if a.cfg.SecureCookies {
		return "__Host-loggate_flow"
	}
	return "loggate_flow"
}

// sealSession encodes s, dropping the raw ID token if needed to fit a cookie.
func (a *Authenticator) sealSession(s *session) (string, error) {
	v, err := a.seal(purposeSession, s)
	if err != nil {
		return "", err
	}
	if len(v) > maxCookieValue && s.IDToken != "" {
		trimmed := *s
		trimmed.IDToken = ""
		if v, err = a.seal(purposeSession, &trimmed); err != nil {
			return "", err
		}
	}
	if len(v) > maxCookieValue {
		return "", tokenErr(ReasonTooLarge, "session of %d bytes does not fit a cookie (too many groups?)", len(v))
	}
	return v, nil
}

func (a *Authenticator) setSessionCookie(w http.ResponseWriter, s *session) error {
	v, err := a.sealSession(s)
	if err != nil {
		return err
	}
	// Max-Age rather than Expires: relative to the browser's clock, not ours.
	maxAge := int(time.Unix(s.Absolute, 0).Sub(a.now()) / time.Second)
	if maxAge < 1 {
		maxAge = 1
	}
	http.SetCookie(w, &http.Cookie{
		Name: a.sessionCookieName(), Value: v, Path: "/",
		MaxAge: maxAge, HttpOnly: true, Secure: a.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
	return nil
}

func (a *Authenticator) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(1, 0),
		HttpOnly: true, Secure: a.cfg.SecureCookies, SameSite: http.SameSiteLaxMode,
	})
}

// readSession opens the session cookie without checking its lifetime.
// It returns ErrNoCredentials when there is no cookie.
func (a *Authenticator) readSession(r *http.Request) (*session, error) {
	c, err := r.Cookie(a.sessionCookieName())
	if err != nil || c.Value == "" {
		return nil, ErrNoCredentials
	}
	var s session
	if err := a.open(purposeSession, c.Value, &s); err != nil {
		return nil, tokenErr(ReasonMalformed, "session cookie does not open (tampered or key removed)")
	}
	if s.ID == "" || s.Subject == "" || s.Issuer != a.cfg.IssuerURL {
		return nil, tokenErr(ReasonMalformed, "session cookie incomplete")
	}
	return &s, nil
}

// checkLifetime enforces the idle and absolute limits.
func (a *Authenticator) checkLifetime(s *session, now time.Time) error {
	if now.After(time.Unix(s.Absolute, 0)) {
		return tokenErr(ReasonExpired, "session reached its absolute lifetime")
	}
	if now.Sub(time.Unix(s.Seen, 0)) > a.cfg.SessionIdle {
		return tokenErr(ReasonExpired, "session idle too long")
	}
	return nil
}

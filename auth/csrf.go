package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"mime"
	"net/http"
)

// CSRFHeader and CSRFField carry the CSRF token on unsafe requests.
const (
	CSRFHeader = "X-CSRF-Token"
	CSRFField  = "csrf_token"
)

func csrfFor(key []byte, sessionID string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("csrf\x00"))
	m.Write([]byte(sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// CSRFToken returns the CSRF token bound to r's session (HMAC of the session
// id), for forms and fetch calls; "" without a readable session. A new login
// yields a new session id and so a new token.
func (a *Authenticator) CSRFToken(r *http.Request) string {
	s, err := a.readSession(r)
	if err != nil {
		return ""
	}
	return csrfFor(a.csrfKeys[0], s.ID)
}

// CheckCSRF checks a session-authenticated unsafe request: the X-CSRF-Token
// header, or else the csrf_token form field, must equal the session's token
// (constant time), and an Origin header, when present, must be the public
// origin of RedirectURL. Bearer requests are exempt: the caller decides when
// to call it. It returns ErrCSRF.
func (a *Authenticator) CheckCSRF(r *http.Request) error {
	if origin := r.Header.Get("Origin"); origin != "" && a.origin != "" && origin != a.origin {
		a.fail(r, ReasonOrigin, "foreign origin "+truncate(safeText(origin), 128), "")
		return ErrCSRF
	}
	s, err := a.readSession(r)
	if err != nil {
		a.fail(r, ReasonCSRF, "no session for csrf check", "")
		return ErrCSRF
	}
	got := r.Header.Get(CSRFHeader)
	if got == "" && isURLEncodedForm(r) {
		// Only urlencoded bodies are parsed here: a multipart body would be
		// spooled to disk before the check. Callers should bound bodies with
		// http.MaxBytesReader.
		got = r.PostFormValue(CSRFField)
	}
	if got == "" {
		a.fail(r, ReasonCSRF, "missing csrf token", "")
		return ErrCSRF
	}
	// Accept tokens made with any configured key, so key rotation does not break open pages.
	for _, k := range a.csrfKeys {
		if hmac.Equal([]byte(got), []byte(csrfFor(k, s.ID))) {
			return nil
		}
	}
	a.fail(r, ReasonCSRF, "wrong csrf token", "")
	return ErrCSRF
}

func isURLEncodedForm(r *http.Request) bool {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/x-www-form-urlencoded"
}

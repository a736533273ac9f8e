package devidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// knownScopes are the only scopes accepted; anything else is invalid_scope.
var knownScopes = []string{"openid", "profile", "email", "groups", "offline_access"}

// pendingLogin is a login form shown for an authorization request. Its id is
// the per-form CSRF token: random, bound to exactly this request, single use.
type pendingLogin struct {
	clientID, redirectURI, state, nonce, challenge string
	scopes                                         []string
	tries                                          int
	expires                                        time.Time
}

// authCode is an issued authorization code, bound to client and redirect_uri.
// A redeemed code is kept, marked used, until it expires, so that a replay
// can revoke the refresh tokens it produced (RFC 6749 section 4.1.2).
type authCode struct {
	used                                    bool
	clientID, redirectURI, challenge, nonce string
	scopes                                  []string
	username                                string
	authTime, expires                       time.Time
}

// parseScopes splits a scope parameter, rejecting unknown scopes and
// requiring openid. An empty parameter means def.
func parseScopes(s string, def []string) ([]string, bool) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		fields = def
	}
	var out []string
	for _, f := range fields {
		if !slices.Contains(knownScopes, f) {
			return nil, false
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, slices.Contains(out, "openid")
}

// redirectAllowed reports whether uri is a registered redirect of c, or, for
// public clients, a loopback redirect per RFC 8252 (any port).
func redirectAllowed(c *Client, uri string) bool {
	if uri == "" {
		return false
	}
	if slices.Contains(c.RedirectURIs, uri) {
		return true
	}
	if c.Secret != "" {
		return false
	}
	u, err := url.Parse(uri)
	if err != nil || !isLoopback(u) {
		return false
	}
	if u.Path == "/callback" && u.RawQuery == "" {
		return true
	}
	for _, reg := range c.RedirectURIs {
		r, err := url.Parse(reg)
		if err == nil && isLoopback(r) && r.Path == u.Path && r.RawQuery == u.RawQuery {
			return true
		}
	}
	return false
}

func isLoopback(u *url.URL) bool {
	h := u.Hostname()
	return u.Scheme == "http" && (h == "127.0.0.1" || h == "::1" || h == "localhost") && u.User == nil &&
		u.Fragment == "" && u.Opaque == "" && !strings.Contains(u.Path, "..")
}

// redirectWith returns uri with the given parameters added to its query.
func redirectWith(uri string, params map[string]string) string {
	u, _ := url.Parse(uri) // validated by redirectAllowed
	q := u.Query()
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

func (p *Provider) handleAuth(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.startLogin(w, r)
	case http.MethodPost:
		p.finishLogin(w, r)
	default:
		methodNotAllowed(w, "GET, POST")
	}
}

// startLogin validates an authorization request and shows the login form.
// Until client and redirect_uri are known good, errors are shown as a page;
// after that they go back to the client per RFC 6749 section 4.1.2.1.
func (p *Provider) startLogin(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := p.clients[q.Get("client_id")]
	if c == nil {
		p.errorPage(w, http.StatusBadRequest, "Unknown client", "The application that sent you here is not registered with this identity provider.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if !redirectAllowed(c, redirectURI) {
		p.errorPage(w, http.StatusBadRequest, "Invalid redirect", "The redirect_uri is not registered for this application, so you were not sent back to it.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		http.Redirect(w, r, redirectWith(redirectURI, map[string]string{"error": code, "error_description": desc, "state": state}), http.StatusFound)
	}
	scopes, hasOpenID := parseScopes(q.Get("scope"), nil)
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
	case scopes == nil || !hasOpenID:
		fail("invalid_scope", "scope must include openid and only: "+strings.Join(knownScopes, " "))
	case challenge == "" && c.Secret == "":
		fail("invalid_request", "public clients must use PKCE (code_challenge with S256)")
	case challenge != "" && (method != "S256" || len(challenge) != 43):
		fail("invalid_request", "code_challenge_method must be S256 with a 43-character challenge")
	case q.Get("prompt") == "none":
		fail("login_required", "the development provider keeps no session")
	default:
		pl := &pendingLogin{clientID: c.ID, redirectURI: redirectURI, state: state, nonce: q.Get("nonce"),
			challenge: challenge, scopes: scopes, expires: p.now().Add(loginFormTTL)}
		id := randomToken()
		p.mu.Lock()
		ok := hasRoom(p, p.logins)
		if ok {
			p.logins[hashKey(id)] = pl
		}
		p.mu.Unlock()
		if !ok {
			p.errorPage(w, http.StatusServiceUnavailable, "Too many sign-ins in progress", "Try again in a few minutes.")
			return
		}
		p.renderLogin(w, http.StatusOK, loginView{Client: c.ID, Request: id, Scopes: scopes})
	}
}

// finishLogin checks the posted credentials for a pending login and, on
// success, redirects to the client with a single-use code.
func (p *Provider) finishLogin(w http.ResponseWriter, r *http.Request) {
	if !p.sameOrigin(r) {
		p.errorPage(w, http.StatusForbidden, "Cross-site request refused", "This form may only be submitted from this identity provider.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, http.StatusBadRequest, "Bad request", "The form could not be read.")
		return
	}
	id, username := r.PostForm.Get("request"), r.PostForm.Get("username")
	key := hashKey(id)
	p.mu.Lock()
	pl := p.logins[key]
	if pl != nil && p.now().After(pl.expires) {
		delete(p.logins, key)
		pl = nil
	}
	p.mu.Unlock()
	if pl == nil {
		p.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in form has expired or was already used. Go back to the application and start again.")
		return
	}
	usr := p.checkPassword(username, r.PostForm.Get("password"))
	p.mu.Lock()
	if p.logins[key] != pl { // used concurrently
		p.mu.Unlock()
		p.errorPage(w, http.StatusBadRequest, "Sign-in expired", "This sign-in form was already used.")
		return
	}
	if usr == nil {
		pl.tries++
		if pl.tries >= maxLoginTries {
			delete(p.logins, key)
		}
		p.mu.Unlock()
		p.log.Info("devidp: login failed", "username", username, "client_id", pl.clientID)
		if pl.tries >= maxLoginTries {
			p.errorPage(w, http.StatusUnauthorized, "Too many attempts", "Go back to the application and start again.")
			return
		}
		p.renderLogin(w, http.StatusUnauthorized, loginView{Client: pl.clientID, Request: id, Scopes: pl.scopes,
			Username: username, Error: "Wrong username or password."})
		return
	}
	delete(p.logins, key)
	now := p.now()
	code := randomToken()
	ok := hasRoom(p, p.codes)
	if ok {
		p.codes[hashKey(code)] = &authCode{clientID: pl.clientID, redirectURI: pl.redirectURI, challenge: pl.challenge,
			nonce: pl.nonce, scopes: pl.scopes, username: usr.Username, authTime: now, expires: now.Add(codeTTL)}
	}
	p.mu.Unlock()
	if !ok {
		http.Redirect(w, r, redirectWith(pl.redirectURI, map[string]string{"error": "temporarily_unavailable", "state": pl.state}), http.StatusSeeOther)
		return
	}
	p.log.Info("devidp: login", "username", usr.Username, "client_id", pl.clientID)
	http.Redirect(w, r, redirectWith(pl.redirectURI, map[string]string{"code": code, "state": pl.state}), http.StatusSeeOther)
}

// checkPassword returns the user when the password matches, comparing in
// constant time (also for unknown users, against a dummy).
func (p *Provider) checkPassword(username, password string) *User {
	usr := p.users[username]
	want := "\x00no such user"
	if usr != nil {
		want = usr.Password
	}
	a, b := sha256.Sum256([]byte(password)), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 || usr == nil {
		return nil
	}
	return usr
}

// sameOrigin refuses form posts that a browser marks as cross-site
// (Sec-Fetch-Site) or whose Origin is neither the issuer's nor the host the
// request was sent to. Non-browser clients send neither header.
//
// A browser sends "Origin: null" for a form posted from a page served with
// "Referrer-Policy: no-referrer" (and from sandboxed frames, data: URLs and
// file: pages). Such a post is accepted only when the browser also vouches
// for it with "Sec-Fetch-Site: same-origin", which a page cannot forge; an
// opaque origin from a sandboxed frame on this host is "same-origin" too,
// but it still needs the per-form request token, which only this
// provider's own page carries.
func (p *Provider) sameOrigin(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site == "cross-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if origin == "null" {
		return site == "same-origin"
	}
	iss, _ := url.Parse(p.issuer)
	return origin == iss.Scheme+"://"+iss.Host || origin == "http://"+r.Host || origin == "https://"+r.Host
}

// pkceMatches verifies an RFC 7636 S256 code_verifier against a challenge.
func pkceMatches(verifier, challenge string) bool {
	if len(verifier) < 43 || len(verifier) > 128 {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

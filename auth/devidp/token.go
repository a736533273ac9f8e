package devidp

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const grantDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// refreshGrant is what a refresh token stands for. Each is single use; a
// used one is kept, marked, until it expires so that its replay (a sign the
// token was stolen) revokes the whole family (OAuth 2.0 Security BCP 4.14).
type refreshGrant struct {
	used               bool
	family             string // shared by all rotations of one original grant
	clientID, username string
	scopes             []string
	authTime, expires  time.Time
}

// oauthError is an RFC 6749 section 5.2 error response.
type oauthError struct {
	status     int
	code, desc string
}

func errInvalidRequest(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_request", desc}
}

func errInvalidGrant(desc string) *oauthError {
	return &oauthError{http.StatusBadRequest, "invalid_grant", desc}
}

var (
	errInvalidClient = &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	errInvalidScope  = &oauthError{http.StatusBadRequest, "invalid_scope", "scope must include openid and only: " + strings.Join(knownScopes, " ")}
	errFull          = &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", "too many active grants; try again later"}
)

func writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	if e.status == http.StatusUnauthorized {
		if _, _, basic := r.BasicAuth(); basic {
			w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
		}
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

// readForm returns the urlencoded body, refusing repeated parameters
// (RFC 6749 section 3.2) and oversized bodies.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, &oauthError{http.StatusMethodNotAllowed, "invalid_request", "use POST"}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errInvalidRequest("body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, errInvalidRequest("malformed form body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, errInvalidRequest("parameter " + k + " repeated")
		}
	}
	return r.PostForm, nil
}

// authenticateClient implements client_secret_basic, client_secret_post
// and "none" (public clients identified by client_id).
func (p *Provider) authenticateClient(r *http.Request, form url.Values) (*Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id) // RFC 6749 section 2.3.1 form-encodes both parts
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || form.Has("client_secret") || (form.Has("client_id") && form.Get("client_id") != id) {
			return nil, errInvalidRequest("conflicting client credentials")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	c := p.clients[id]
	if c == nil {
		return nil, errInvalidClient
	}
	if c.Secret == "" {
		if secret != "" {
			return nil, errInvalidClient
		}
		return c, nil
	}
	a, b := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(c.Secret))
	if subtle.ConstantTimeCompare(a[:], b[:]) != 1 {
		return nil, errInvalidClient
	}
	return c, nil
}

func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	resp, e := p.token(w, r)
	if e != nil {
		writeOAuthError(w, r, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) (map[string]any, *oauthError) {
	form, e := readForm(w, r)
	if e != nil {
		return nil, e
	}
	c, e := p.authenticateClient(r, form)
	if e != nil {
		return nil, e
	}
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		return p.codeGrant(c, form)
	case "password":
		usr := p.checkPassword(form.Get("username"), form.Get("password"))
		if usr == nil {
			p.log.Info("devidp: password grant failed", "username", form.Get("username"), "client_id", c.ID)
			return nil, errInvalidGrant("wrong username or password")
		}
		scopes, ok := parseScopes(form.Get("scope"), []string{"openid"})
		if !ok {
			return nil, errInvalidScope
		}
		p.log.Info("devidp: password grant", "username", usr.Username, "client_id", c.ID)
		return p.issue(c, usr, scopes, p.now(), "", randomToken())
	case "refresh_token":
		return p.refreshGrant(c, form)
	case grantDeviceCode:
		return p.deviceGrant(c, form)
	case "":
		return nil, errInvalidRequest("grant_type missing")
	default:
		return nil, &oauthError{http.StatusBadRequest, "unsupported_grant_type", "unsupported grant_type"}
	}
}

func (p *Provider) codeGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	key := hashKey(form.Get("code"))
	p.mu.Lock()
	ac := p.codes[key]
	if ac != nil && ac.used {
		p.revokeFamilyLocked(key)
		p.log.Warn("devidp: authorization code replayed; refresh tokens revoked", "client_id", c.ID)
		ac = nil
	}
	if ac != nil {
		ac.used = true // single use, whatever happens next
	}
	p.mu.Unlock()
	if ac == nil || p.now().After(ac.expires) || ac.clientID != c.ID || ac.redirectURI != form.Get("redirect_uri") {
		return nil, errInvalidGrant("code is invalid, expired, used, or issued to another client or redirect_uri")
	}
	verifier := form.Get("code_verifier")
	if (ac.challenge == "") != (verifier == "") || (ac.challenge != "" && !pkceMatches(verifier, ac.challenge)) {
		return nil, errInvalidGrant("code_verifier does not match code_challenge")
	}
	usr := p.users[ac.username]
	return p.issue(c, usr, ac.scopes, ac.authTime, ac.nonce, key)
}

func (p *Provider) refreshGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	key := hashKey(form.Get("refresh_token"))
	p.mu.Lock()
	g := p.refreshes[key]
	switch {
	case g != nil && g.used:
		p.revokeFamilyLocked(g.family)
		p.log.Warn("devidp: refresh token replayed; its family is revoked", "client_id", c.ID, "username", g.username)
		g = nil
	case g != nil && g.clientID == c.ID:
		g.used = true // rotation: every refresh token is single use
	}
	p.mu.Unlock()
	if g == nil || g.clientID != c.ID || p.now().After(g.expires) {
		return nil, errInvalidGrant("refresh token is invalid, expired, used, or issued to another client")
	}
	scopes := g.scopes
	if s := form.Get("scope"); s != "" {
		scopes = strings.Fields(s)
		for _, sc := range scopes {
			if !slices.Contains(g.scopes, sc) {
				return nil, errInvalidScope
			}
		}
		if !slices.Contains(scopes, "openid") {
			return nil, errInvalidScope
		}
	}
	return p.issue(c, p.users[g.username], scopes, g.authTime, "", g.family)
}

// revokeFamilyLocked deletes every refresh token descending from one grant.
func (p *Provider) revokeFamilyLocked(family string) {
	for k, g := range p.refreshes {
		if g.family == family {
			delete(p.refreshes, k)
		}
	}
}

// issue mints the access token, ID token and (with offline_access) a
// refresh token of the given family, and returns the token response.
func (p *Provider) issue(c *Client, u *User, scopes []string, authTime time.Time, nonce, family string) (map[string]any, *oauthError) {
	now := p.now()
	exp := now.Add(p.idTTL)
	at := userClaims(u, scopes) // RFC 9068 allows identity claims in access tokens
	for k, v := range map[string]any{
		"iss": p.issuer, "aud": c.ID, "client_id": c.ID, "iat": now.Unix(), "exp": exp.Unix(),
		"auth_time": authTime.Unix(), "jti": randomToken(), "scope": strings.Join(scopes, " "),
	} {
		at[k] = v
	}
	access, err := p.sign(typAccessToken, at)
	if err != nil {
		p.log.Error("devidp: sign access token", "err", err)
		return nil, &oauthError{http.StatusInternalServerError, "server_error", "signing failed"}
	}
	id := userClaims(u, scopes)
	sum := sha256.Sum256([]byte(access))
	for k, v := range map[string]any{
		"iss": p.issuer, "aud": c.ID, "azp": c.ID, "iat": now.Unix(), "exp": exp.Unix(),
		"auth_time": authTime.Unix(), "at_hash": base64.RawURLEncoding.EncodeToString(sum[:16]),
	} {
		id[k] = v
	}
	if nonce != "" {
		id["nonce"] = nonce
	}
	idToken, err := p.sign(typIDToken, id)
	if err != nil {
		p.log.Error("devidp: sign id token", "err", err)
		return nil, &oauthError{http.StatusInternalServerError, "server_error", "signing failed"}
	}
	resp := map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int64(p.idTTL / time.Second),
		"id_token": idToken, "scope": strings.Join(scopes, " "),
	}
	if slices.Contains(scopes, "offline_access") {
		rt := randomToken()
		p.mu.Lock()
		ok := hasRoom(p, p.refreshes)
		if ok {
			p.refreshes[hashKey(rt)] = &refreshGrant{family: family, clientID: c.ID, username: u.Username, scopes: scopes,
				authTime: authTime, expires: now.Add(p.refreshTTL)}
		}
		p.mu.Unlock()
		if !ok {
			return nil, errFull
		}
		resp["refresh_token"] = rt
	}
	return resp, nil
}

// userClaims are the identity claims the scopes allow, for ID token and userinfo.
func userClaims(u *User, scopes []string) map[string]any {
	m := map[string]any{"sub": subject(u)}
	if slices.Contains(scopes, "profile") {
		m["name"] = u.Name
		m["preferred_username"] = u.Username
	}
	if slices.Contains(scopes, "email") && u.Email != "" {
		m["email"] = u.Email
		m["email_verified"] = true
	}
	if slices.Contains(scopes, "groups") {
		m["groups"] = nonNil(u.Groups)
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// handleUserinfo serves the claims of the user a bearer access token names.
func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, "GET, POST")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var u *User
	var scope string
	if ok {
		if claims, err := p.verify(strings.TrimSpace(raw), typAccessToken); err == nil {
			exp, _ := claims["exp"].(float64)
			sub, _ := claims["sub"].(string)
			scope, _ = claims["scope"].(string)
			if name, found := strings.CutPrefix(sub, "dev-"); found && p.now().Unix() < int64(exp) {
				u = p.users[name]
			}
		}
	}
	if u == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		return
	}
	writeJSON(w, http.StatusOK, userClaims(u, strings.Fields(scope)))
}

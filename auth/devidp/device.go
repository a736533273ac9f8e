package devidp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// deviceGrant is a pending RFC 8628 device authorization.
type deviceGrant struct {
	clientID string
	scopes   []string
	userCode string // normalised: 8 letters, no dash
	username string // set when approved
	denied   bool
	authTime time.Time
	interval time.Duration // grows by 5s on each slow_down
	lastPoll time.Time
	expires  time.Time
}

// userCodeAlphabet has no vowels (no accidental words) and no look-alikes.
const userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

func newUserCode() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic("devidp: crypto/rand failed: " + err.Error())
	}
	for i := range b {
		b[i] = userCodeAlphabet[int(b[i])%len(userCodeAlphabet)] // 256 % 20 bias is irrelevant here
	}
	return string(b)
}

func normaliseUserCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(s))
}

func displayUserCode(c string) string {
	if len(c) != 8 {
		return c
	}
	return c[:4] + "-" + c[4:]
}

// handleDeviceCode is the device authorization endpoint (RFC 8628 3.1).
func (p *Provider) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	form, e := readForm(w, r)
	if e == nil {
		var c *Client
		if c, e = p.authenticateClient(r, form); e == nil {
			scopes, ok := parseScopes(form.Get("scope"), []string{"openid"})
			if !ok {
				e = errInvalidScope
			} else if resp, ok := p.startDevice(c, scopes); ok {
				writeJSON(w, http.StatusOK, resp)
				return
			} else {
				e = errFull
			}
		}
	}
	writeOAuthError(w, r, e)
}

func (p *Provider) startDevice(c *Client, scopes []string) (map[string]any, bool) {
	dc := randomToken()
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !hasRoom(p, p.devices) {
		return nil, false
	}
	uc := newUserCode()
	for p.userCodes[uc] != "" {
		uc = newUserCode()
	}
	key := hashKey(dc)
	p.devices[key] = &deviceGrant{clientID: c.ID, scopes: scopes, userCode: uc, interval: p.pollInterval,
		expires: now.Add(p.deviceTTL)}
	p.userCodes[uc] = key
	return map[string]any{
		"device_code":               dc,
		"user_code":                 displayUserCode(uc),
		"verification_uri":          p.base + "/device",
		"verification_uri_complete": p.base + "/device?user_code=" + url.QueryEscape(displayUserCode(uc)),
		"expires_in":                int64(p.deviceTTL / time.Second),
		"interval":                  int64(p.pollInterval / time.Second),
	}, true
}

// deviceGrant answers a device_code poll at the token endpoint (RFC 8628 3.5).
func (p *Provider) deviceGrant(c *Client, form url.Values) (map[string]any, *oauthError) {
	key := hashKey(form.Get("device_code"))
	now := p.now()
	p.mu.Lock()
	g := p.devices[key]
	if g == nil || g.clientID != c.ID {
		p.mu.Unlock()
		return nil, errInvalidGrant("unknown device_code")
	}
	done := func() { delete(p.devices, key); delete(p.userCodes, g.userCode) }
	switch {
	case now.After(g.expires):
		done()
		p.mu.Unlock()
		return nil, &oauthError{http.StatusBadRequest, "expired_token", "the device code has expired"}
	case g.denied:
		done()
		p.mu.Unlock()
		return nil, &oauthError{http.StatusBadRequest, "access_denied", "the user denied the request"}
	case g.username != "":
		done()
		p.mu.Unlock()
		return p.issue(c, p.users[g.username], g.scopes, g.authTime, "", key)
	}
	// Allow a little jitter: a client polling on a ticker is not "too fast".
	tooFast := !g.lastPoll.IsZero() && now.Sub(g.lastPoll) < g.interval*4/5
	g.lastPoll = now
	if tooFast {
		g.interval += 5 * time.Second
		p.mu.Unlock()
		return nil, &oauthError{http.StatusBadRequest, "slow_down", "polling too fast"}
	}
	p.mu.Unlock()
	return nil, &oauthError{http.StatusBadRequest, "authorization_pending", "the user has not yet approved"}
}

// handleDevicePage is the verification page where the user enters the code
// shown on the device plus their credentials, and approves or denies.
func (p *Provider) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.renderDevice(w, http.StatusOK, deviceView{UserCode: r.URL.Query().Get("user_code"), Token: p.formToken("device")})
		return
	case http.MethodPost:
	default:
		methodNotAllowed(w, "GET, POST")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if !p.sameOrigin(r) || r.ParseForm() != nil || !p.checkFormToken("device", r.PostForm.Get("csrf")) {
		p.errorPage(w, http.StatusForbidden, "Form expired", "Reload the page and try again.")
		return
	}
	f := r.PostForm
	view := deviceView{UserCode: f.Get("user_code"), Username: f.Get("username"), Token: p.formToken("device")}
	usr := p.checkPassword(f.Get("username"), f.Get("password"))
	if usr == nil {
		view.Error = "Wrong username or password."
		p.renderDevice(w, http.StatusUnauthorized, view)
		return
	}
	uc := normaliseUserCode(f.Get("user_code"))
	deny := f.Get("action") == "deny"
	p.mu.Lock()
	g := p.devices[p.userCodes[uc]]
	ok := g != nil && !p.now().After(g.expires) && g.username == "" && !g.denied
	if ok {
		g.denied = deny
		if !deny {
			g.username, g.authTime = usr.Username, p.now()
		}
	}
	p.mu.Unlock()
	if !ok {
		view.Error = "That code is unknown, expired or already used."
		p.renderDevice(w, http.StatusBadRequest, view)
		return
	}
	p.log.Info("devidp: device authorization", "username", usr.Username, "client_id", g.clientID, "denied", deny)
	if deny {
		p.messagePage(w, "Request denied", "The device was not signed in. You can close this page.")
		return
	}
	p.messagePage(w, "Device signed in", "You are signed in on your device. You can close this page.")
}

// formToken is a stateless CSRF token for a form: expiry plus an HMAC.
func (p *Provider) formToken(purpose string) string {
	exp := strconv.FormatInt(p.now().Add(loginFormTTL).Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(p.formMAC(purpose, exp))
}

func (p *Provider) checkFormToken(purpose, tok string) bool {
	exp, mac, ok := strings.Cut(tok, ".")
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if !ok || err != nil || !hmac.Equal(got, p.formMAC(purpose, exp)) {
		return false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	return err == nil && p.now().Unix() < sec
}

func (p *Provider) formMAC(purpose, exp string) []byte {
	m := hmac.New(sha256.New, p.formKey)
	m.Write([]byte(purpose + "|" + exp))
	return m.Sum(nil)
}

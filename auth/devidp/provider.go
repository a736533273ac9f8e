package devidp

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// User is a local account of the development provider.
type User struct {
	Username, Password, Name, Email string
	Groups                          []string
}

// DemoUsers returns the built-in demo accounts: alice (engineers), bob
// (engineers, sre-leads, oncall) and carol (security, loggate-admins). Each
// password equals the username; emails are <name>@example.com.
func DemoUsers() []User {
	return []User{
		{Username: "alice", Password: "alice", Name: "Alice Example", Email: "alice@example.com", Groups: []string{"engineers"}},
		{Username: "bob", Password: "bob", Name: "Bob Example", Email: "bob@example.com", Groups: []string{"engineers", "sre-leads", "oncall"}},
		{Username: "carol", Password: "carol", Name: "Carol Example", Email: "carol@example.com", Groups: []string{"security", "loggate-admins"}},
	}
}

// Client is a registered OAuth 2.0 client (relying party).
type Client struct {
	ID string
	// Secret empty means a public client: PKCE is required for the code
	// flow; the password and device grants need only the client_id.
	Secret string
	// RedirectURIs are matched exactly. Public clients may additionally use
	// any loopback redirect (RFC 8252) http://127.0.0.1:<port><path> or
	// http://localhost:<port><path> whose path is "/callback" or the path of
	// a registered loopback URI.
	RedirectURIs []string
	// PostLogoutRedirectURIs are the exact URIs /logout may redirect to.
	// Zero: /logout always shows the signed-out page.
	PostLogoutRedirectURIs []string
}

// Config configures a Provider.
type Config struct {
	// Issuer is required: the full URL, e.g. http://127.0.0.1:8080/dev/oidc.
	// All endpoints live under its path.
	Issuer string
	// Clients is required, at least one.
	Clients []Client
	// Users is required, at least one.
	Users []User
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// IDTokenTTL is the lifetime of ID and access tokens. Zero: 1h.
	IDTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of a refresh token. Zero: 24h.
	RefreshTokenTTL time.Duration
	// DeviceCodeTTL is the lifetime of a device code. Zero: 10m.
	DeviceCodeTTL time.Duration
	// DevicePollInterval is the minimum polling interval announced to device
	// clients; faster polls get slow_down. Zero: 5s. Rounded up to seconds.
	DevicePollInterval time.Duration
	// KeyGrace is how long a rotated-out key stays in the JWKS. Zero: 24h.
	KeyGrace time.Duration
	// MaxEntries bounds each in-memory table (pending logins, codes,
	// refresh tokens, device codes). Zero: 10000.
	MaxEntries int
	// Logger receives login and grant events (never secrets). Nil: discard.
	Logger *slog.Logger
}

// Lifetimes that are not configurable.
const (
	codeTTL        = time.Minute      // authorization codes
	loginFormTTL   = 10 * time.Minute // a pending login form
	maxLoginTries  = 5                // wrong passwords per login form
	cleanupPeriod  = 30 * time.Second
	maxFormBytes   = 64 << 10
	defaultMaxSize = 10000
)

// Provider is the development identity provider. It is an http.Handler.
type Provider struct {
	issuer string // exactly as configured; the "iss" claim
	base   string // issuer without trailing slash; endpoint URLs are base+"/x"
	path   string // issuer path without trailing slash; request prefix

	clients      map[string]*Client
	users        map[string]*User
	now          func() time.Time
	log          *slog.Logger
	idTTL        time.Duration
	refreshTTL   time.Duration
	deviceTTL    time.Duration
	pollInterval time.Duration
	grace        time.Duration
	maxEntries   int
	formKey      []byte // HMAC key for stateless form tokens (device page)

	// mu guards everything below.
	mu        sync.Mutex
	keys      []*signingKey // keys[0] signs; the rest are retired
	logins    map[string]*pendingLogin
	codes     map[string]*authCode
	refreshes map[string]*refreshGrant
	devices   map[string]*deviceGrant // by hash of device code
	userCodes map[string]string       // user code -> hash of device code

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New validates cfg, generates the first signing key and starts the
// background cleanup goroutine, which Close stops.
func New(cfg Config) (*Provider, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("devidp: issuer %q must be an absolute http(s) URL without query or fragment", cfg.Issuer)
	}
	if len(cfg.Clients) == 0 {
		return nil, errors.New("devidp: at least one client is required")
	}
	if len(cfg.Users) == 0 {
		return nil, errors.New("devidp: at least one user is required")
	}
	p := &Provider{
		issuer:       cfg.Issuer,
		base:         strings.TrimSuffix(cfg.Issuer, "/"),
		path:         strings.TrimSuffix(u.Path, "/"),
		clients:      make(map[string]*Client),
		users:        make(map[string]*User),
		now:          cfg.Now,
		log:          cfg.Logger,
		idTTL:        orDefault(cfg.IDTokenTTL, time.Hour),
		refreshTTL:   orDefault(cfg.RefreshTokenTTL, 24*time.Hour),
		deviceTTL:    orDefault(cfg.DeviceCodeTTL, 10*time.Minute),
		pollInterval: orDefault(cfg.DevicePollInterval, 5*time.Second).Round(time.Second),
		grace:        orDefault(cfg.KeyGrace, 24*time.Hour),
		maxEntries:   cfg.MaxEntries,
		formKey:      make([]byte, 32),
		logins:       make(map[string]*pendingLogin),
		codes:        make(map[string]*authCode),
		refreshes:    make(map[string]*refreshGrant),
		devices:      make(map[string]*deviceGrant),
		userCodes:    make(map[string]string),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.maxEntries <= 0 {
		p.maxEntries = defaultMaxSize
	}
	if p.pollInterval < time.Second {
		p.pollInterval = time.Second
	}
	for i := range cfg.Clients {
		c := cfg.Clients[i]
		if c.ID == "" || p.clients[c.ID] != nil {
			return nil, fmt.Errorf("devidp: client %d: empty or duplicate id %q", i, c.ID)
		}
		for _, ru := range append(append([]string(nil), c.RedirectURIs...), c.PostLogoutRedirectURIs...) {
			if r, err := url.Parse(ru); err != nil || !r.IsAbs() || r.Fragment != "" {
				return nil, fmt.Errorf("devidp: client %q: redirect URI %q must be absolute without fragment", c.ID, ru)
			}
		}
		p.clients[c.ID] = &c
	}
	for i := range cfg.Users {
		usr := cfg.Users[i]
		if usr.Username == "" || usr.Password == "" || p.users[usr.Username] != nil {
			return nil, fmt.Errorf("devidp: user %d: empty or duplicate username %q, or empty password", i, usr.Username)
		}
		p.users[usr.Username] = &usr
	}
	if _, err := rand.Read(p.formKey); err != nil {
		return nil, fmt.Errorf("devidp: form key: %w", err)
	}
	k, err := newSigningKey()
	if err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	p.keys = []*signingKey{k}
	go p.cleanupLoop()
	return p, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Close stops the background cleanup goroutine. It is safe to call twice.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() { close(p.stop) })
	<-p.done
	return nil
}

func (p *Provider) cleanupLoop() {
	defer close(p.done)
	t := time.NewTicker(cleanupPeriod)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.purgeLocked()
			p.mu.Unlock()
		}
	}
}

// purgeLocked drops expired grants and keys past their grace period.
func (p *Provider) purgeLocked() {
	now := p.now()
	for k, v := range p.logins {
		if now.After(v.expires) {
			delete(p.logins, k)
		}
	}
	for k, v := range p.codes {
		if now.After(v.expires) {
			delete(p.codes, k)
		}
	}
	for k, v := range p.refreshes {
		if now.After(v.expires) {
			delete(p.refreshes, k)
		}
	}
	for k, v := range p.devices {
		if now.After(v.expires) {
			delete(p.devices, k)
			delete(p.userCodes, v.userCode)
		}
	}
	live := p.keys[:1]
	for _, k := range p.keys[1:] {
		if now.Before(k.retired.Add(p.grace)) {
			live = append(live, k)
		}
	}
	p.keys = live
}

// hasRoom reports whether one more entry fits in m, purging expired entries
// first when it is full. The caller holds p.mu.
func hasRoom[V any](p *Provider, m map[string]V) bool {
	if len(m) < p.maxEntries {
		return true
	}
	p.purgeLocked()
	return len(m) < p.maxEntries
}

// ServeHTTP serves every endpoint under the issuer's path; the path is not
// stripped, so mount the provider at the issuer path plus "/".
func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, p.path)
	if !ok || (rest != "" && rest[0] != '/') {
		http.NotFound(w, r)
		return
	}
	switch rest {
	case "/.well-known/openid-configuration":
		p.handleDiscovery(w, r)
	case "/keys":
		p.handleKeys(w, r)
	case "/auth":
		p.handleAuth(w, r)
	case "/token":
		p.handleToken(w, r)
	case "/userinfo":
		p.handleUserinfo(w, r)
	case "/device/code":
		p.handleDeviceCode(w, r)
	case "/device":
		p.handleDevicePage(w, r)
	case "/logout":
		p.handleLogout(w, r)
	case "/static.css":
		serveCSS(w, r)
	default:
		http.NotFound(w, r)
	}
}

// randomToken returns 32 random bytes, base64url encoded.
func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("devidp: crypto/rand failed: " + err.Error()) // never returns an error on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashKey is the map key for a secret value, so tables never hold raw tokens.
func hashKey(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// subject is the stable "sub" claim for a user; deliberately not the email.
func subject(u *User) string { return "dev-" + u.Username }

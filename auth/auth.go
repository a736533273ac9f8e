package auth

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Errors returned by Authenticate, VerifyToken and CheckCSRF. Decide with errors.Is.
var (
	// ErrNoCredentials: the request carries neither an Authorization header nor a session cookie.
	ErrNoCredentials = errors.New("no credentials")
	// ErrInvalidToken: a bearer token or session was presented and refused. The
	// concrete error is a *TokenError carrying the reason class.
	ErrInvalidToken = errors.New("invalid token")
	// ErrCSRF: a session-authenticated unsafe request lacks a valid CSRF token or
	// comes from a foreign origin.
	ErrCSRF = errors.New("csrf check failed")
	// ErrAudit: the audit hook refused an auth.login, auth.token or auth.refresh
	// event, so the authentication fails closed. Callers should answer 503.
	ErrAudit = errors.New("auth audit failed")
	// ErrProviderUnavailable: discovery or the provider's keys could not be fetched.
	ErrProviderUnavailable = errors.New("identity provider unavailable")
)

// Reason classes carried by TokenError and Event.Reason.
const (
	ReasonExpired       = "expired"
	ReasonBadSignature  = "bad_signature"
	ReasonWrongAudience = "wrong_audience"
	ReasonWrongIssuer   = "wrong_issuer"
	ReasonMalformed     = "malformed"
	ReasonAlgNone       = "alg_none"
	ReasonUnknownKey    = "unknown_key"
	ReasonCSRF          = "csrf"
	ReasonState         = "state"
	ReasonNonce         = "nonce"
	ReasonOrigin        = "origin"
	ReasonDomain        = "domain"
	ReasonProvider      = "provider_error"
	ReasonNoCredentials = "no_credentials"
	ReasonTooLarge      = "too_large"
	ReasonAudit         = "audit"
)

// TokenError is a refused bearer token or session. Error() is always exactly
// "invalid token", so it is safe to show to a client; Reason and Detail are for
// logs and audit only (Detail never contains a token).
type TokenError struct {
	Reason string
	Detail string
}

func (e *TokenError) Error() string { return "invalid token" }

// Is makes errors.Is(err, ErrInvalidToken) true for every *TokenError.
func (e *TokenError) Is(target error) bool { return target == ErrInvalidToken }

// LogValue renders reason and detail for slog without changing Error().
func (e *TokenError) LogValue() slog.Value {
	return slog.GroupValue(slog.String("reason", e.Reason), slog.String("detail", e.Detail))
}

func tokenErr(reason, format string, args ...any) *TokenError {
	return &TokenError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Identity is an authenticated caller. It says who, never what they may do.
type Identity struct {
	Issuer   string   `json:"issuer"`
	Subject  string   `json:"subject"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	Username string   `json:"username,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	// Via is "bearer" or "session".
	Via string `json:"via"`
	// TokenHash is a keyed hash of the bearer token, for audit correlation; never the token.
	TokenHash string `json:"token_hash,omitempty"`
	// SessionID is the random id of the browser session ("" for bearer).
	SessionID string `json:"session_id,omitempty"`
}

// ID is the stable user id: issuer + "|" + subject. Never the email alone.
func (i Identity) ID() string { return i.Issuer + "|" + i.Subject }

// InGroup reports whether g is one of the identity's groups (exact match).
func (i Identity) InGroup(g string) bool { return slices.Contains(i.Groups, g) }

// Display is a human label: username, else email, else subject.
func (i Identity) Display() string {
	switch {
	case i.Username != "":
		return i.Username
	case i.Email != "":
		return i.Email
	}
	return i.Subject
}

// Event actions.
const (
	ActionLogin   = "auth.login"
	ActionFailed  = "auth.failed"
	ActionLogout  = "auth.logout"
	ActionToken   = "auth.token"
	ActionRefresh = "auth.refresh"
)

// Event is what the package reports to Config.OnEvent for the audit trail.
type Event struct {
	Action     string    // auth.login | auth.failed | auth.logout | auth.token | auth.refresh
	Identity   *Identity // nil for auth.failed
	Reason     string    // reason class for auth.failed
	Detail     string    // safe text, never a token
	TokenHash  string    // keyed hash of the presented bearer token, if any
	RemoteAddr string
	UserAgent  string
	Count      int // number of failures this event stands for (>1 when aggregated)
}

// Config configures an Authenticator. Zero values are documented per field.
type Config struct {
	// IssuerURL is the provider's issuer, exactly as in its discovery document. Required.
	IssuerURL string
	// ClientID is the gateway's own client id. Required.
	ClientID string
	// ClientSecret for a confidential client; empty for a public one. Never logged.
	ClientSecret string
	// PublicClientID is the client id a CLI uses (e.g. "loggate"); tokens with
	// this audience are accepted too, and ClientConfig advertises it. Optional.
	PublicClientID string
	// ExtraAudiences are further accepted audiences (JWT access tokens). Optional.
	ExtraAudiences []string
	// RedirectURL is <public URL>/auth/callback. Required for browser login; its
	// origin is also the only Origin CheckCSRF accepts and the base of the
	// post-logout redirect.
	RedirectURL string
	// Scopes requested at login. Zero: openid profile email groups offline_access.
	Scopes []string
	// GroupsClaim names the claim holding groups. Zero: "groups".
	GroupsClaim string
	// GroupMapping maps a subject, "issuer|subject" or (verified) email to extra groups.
	GroupMapping map[string][]string
	// AllowedEmailDomains, when non-empty, requires a verified email in one of these domains.
	AllowedEmailDomains []string
	// SessionKeys are cookie keys, each at least 32 bytes. [0] seals new cookies;
	// the others are still accepted (rotation). Required.
	SessionKeys [][]byte
	// SecureCookies sets the Secure flag and the __Host- cookie name prefix.
	SecureCookies bool
	// SessionIdle ends a session not used for this long. Zero: 8h.
	SessionIdle time.Duration
	// SessionAbsolute ends a session this long after login. Zero: 24h.
	SessionAbsolute time.Duration
	// ClockSkew is the leeway for exp and nbf. Zero: 1m. Negative: none.
	ClockSkew time.Duration
	// HTTPClient is used for discovery, JWKS and token calls. Zero: 10s timeout client.
	HTTPClient *http.Client
	// ClientAddr returns the caller's address (trusted-proxy aware). Zero: host of r.RemoteAddr.
	ClientAddr func(*http.Request) string
	// OnEvent receives audit events. An error for auth.login, auth.token or
	// auth.refresh fails that authentication closed. Failures are aggregated per
	// reason and address per FailureWindow before they arrive. Zero: events dropped.
	OnEvent func(context.Context, Event) error
	// FailureWindow is the aggregation window for auth.failed. Zero: 10s.
	FailureWindow time.Duration
	// ConsumeOnce marks a login state used, reporting whether this was the
	// first use; replicas share it (Redis) so a callback cannot be replayed
	// on another replica. An error fails the login closed. Zero: an
	// in-memory set, enough for one instance.
	ConsumeOnce func(ctx context.Context, key string, until time.Time) (bool, error)
	// Sessions, when set, keeps a server-side record of every browser
	// session: a session is valid only while its record exists, so it can be
	// listed and ended (EndSession, back-channel logout). Replicas share one.
	// Zero: sessions live in the cookie alone and cannot be ended early.
	Sessions SessionStore
	// Now is the clock. Zero: time.Now.
	Now func() time.Time
	// Logger receives operational logs (never secrets). Zero: discard.
	Logger *slog.Logger
}

// Authenticator verifies bearer tokens and browser sessions against one provider.
type Authenticator struct {
	cfg       Config
	log       *slog.Logger
	audiences []string // accepted audiences, ClientID first
	keys      []sessionKey
	csrfKeys  [][]byte            // per session key, same order
	hashKey   []byte              // keyed token hash, from SessionKeys[0]
	publicURL string              // origin of RedirectURL + "/" ("" without RedirectURL)
	byEmail   map[string][]string // GroupMapping with lower-cased keys, for email lookups
	origin    string              // scheme://host of RedirectURL

	disc      discovery
	tokens    *tokenCache
	failures  *failureAggregator
	refreshes refreshGroup
	usedState *stateSet

	closeOnce sync.Once
}

// New validates cfg and returns an Authenticator. It does no network I/O.
// Call Close to flush aggregated failure events and stop the flusher.
func New(cfg Config) (*Authenticator, error) {
	if cfg.IssuerURL == "" {
		return nil, errors.New("auth: IssuerURL is required")
	}
	if _, err := url.Parse(cfg.IssuerURL); err != nil {
		return nil, fmt.Errorf("auth: IssuerURL: %w", err)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("auth: ClientID is required")
	}
	if len(cfg.SessionKeys) == 0 {
		return nil, errors.New("auth: at least one session key is required")
	}
	for i, k := range cfg.SessionKeys {
		if len(k) < 32 {
			return nil, fmt.Errorf("auth: session key %d is %d bytes, need at least 32", i, len(k))
		}
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", "email", "groups", oidc.ScopeOfflineAccess}
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.SessionIdle == 0 {
		cfg.SessionIdle = 8 * time.Hour
	}
	if cfg.SessionAbsolute == 0 {
		cfg.SessionAbsolute = 24 * time.Hour
	}
	switch {
	case cfg.ClockSkew == 0:
		cfg.ClockSkew = time.Minute
	case cfg.ClockSkew < 0:
		cfg.ClockSkew = 0
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.ClientAddr == nil {
		cfg.ClientAddr = remoteHost
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{cfg: cfg, log: cfg.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if cfg.RedirectURL != "" {
		u, err := url.Parse(cfg.RedirectURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("auth: RedirectURL %q must be an absolute http(s) URL", cfg.RedirectURL)
		}
		a.origin = u.Scheme + "://" + u.Host
		a.publicURL = a.origin + "/"
	}
	a.byEmail = make(map[string][]string, len(cfg.GroupMapping))
	for k, v := range cfg.GroupMapping {
		lk := strings.ToLower(k)
		a.byEmail[lk] = appendUnique(a.byEmail[lk], v...)
	}
	a.audiences = appendUnique(nil, cfg.ClientID)
	if cfg.PublicClientID != "" {
		a.audiences = appendUnique(a.audiences, cfg.PublicClientID)
	}
	for _, aud := range cfg.ExtraAudiences {
		if aud != "" {
			a.audiences = appendUnique(a.audiences, aud)
		}
	}
	for _, k := range cfg.SessionKeys {
		sk, err := newSessionKey(k)
		if err != nil {
			return nil, fmt.Errorf("auth: session key: %w", err)
		}
		a.keys = append(a.keys, sk)
		ck, err := hkdf.Key(sha256.New, k, nil, "loggate/auth csrf v1", 32)
		if err != nil {
			return nil, fmt.Errorf("auth: derive csrf key: %w", err)
		}
		a.csrfKeys = append(a.csrfKeys, ck)
	}
	hk, err := hkdf.Key(sha256.New, cfg.SessionKeys[0], nil, "loggate/auth token hash v1", 32)
	if err != nil {
		return nil, fmt.Errorf("auth: derive token hash key: %w", err)
	}
	a.hashKey = hk
	a.tokens = newTokenCache(4096)
	a.usedState = newStateSet(10000)
	a.failures = newFailureAggregator(a, cfg.FailureWindow, 10000)
	return a, nil
}

// Close flushes pending aggregated failure events and stops the background
// flusher. The Authenticator must not be used afterwards.
func (a *Authenticator) Close() error {
	a.closeOnce.Do(func() { a.failures.close() })
	return nil
}

func (a *Authenticator) now() time.Time { return a.cfg.Now() }

// emit sends ev to OnEvent, returning its error.
func (a *Authenticator) emit(ctx context.Context, ev Event) error {
	if a.cfg.OnEvent == nil {
		return nil
	}
	if ev.Count == 0 {
		ev.Count = 1
	}
	if err := a.cfg.OnEvent(ctx, ev); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrAudit, ev.Action, err)
	}
	return nil
}

// fail records an authentication failure; the aggregator decides when OnEvent sees it.
func (a *Authenticator) fail(r *http.Request, reason, detail, tokenHash string) {
	ev := Event{Action: ActionFailed, Reason: reason, Detail: detail, TokenHash: tokenHash}
	if r != nil {
		ev.RemoteAddr = a.cfg.ClientAddr(r)
		ev.UserAgent = truncate(r.UserAgent(), 256)
	}
	a.log.Debug("auth failed", "reason", reason, "detail", detail, "addr", ev.RemoteAddr)
	a.failures.add(ev)
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func appendUnique(s []string, v ...string) []string {
	for _, x := range v {
		if !slices.Contains(s, x) {
			s = append(s, x)
		}
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

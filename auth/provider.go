package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// asymmetricAlgs are the only signature algorithms ever accepted: no HS*, no none.
var asymmetricAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512,
	oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA,
}

// discoveryRetry is the minimum pause between failed discovery attempts.
const discoveryRetry = time.Second

// provider is everything learned from discovery; immutable once built.
type provider struct {
	issuer     string
	oauth      oauth2.Config
	keys       *keySet
	verifiers  map[string]*oidc.IDTokenVerifier // per accepted audience
	algs       []string
	endSession string
	deviceAuth string
}

// discovery lazily builds the provider, caching success forever and failure
// for discoveryRetry, with at most one attempt in flight.
type discovery struct {
	mu     sync.Mutex // held during an attempt; serialises attempts
	p      *provider
	err    error
	failed time.Time
}

type discoveryDoc struct {
	JWKSURL    string   `json:"jwks_uri"`
	Algs       []string `json:"id_token_signing_alg_values_supported"`
	EndSession string   `json:"end_session_endpoint"`
}

// provider returns the discovered provider, discovering it if needed.
func (a *Authenticator) provider(ctx context.Context) (*provider, error) {
	d := &a.disc
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p != nil {
		return d.p, nil
	}
	if since := a.now().Sub(d.failed); d.err != nil && since >= 0 && since < discoveryRetry {
		return nil, d.err
	}
	p, err := a.discover(ctx)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		if ctx.Err() == nil { // do not cache a failure caused by the caller giving up
			d.err, d.failed = err, a.now()
		}
		a.log.Warn("oidc discovery failed", "issuer", a.cfg.IssuerURL, "err", err)
		return nil, err
	}
	d.p, d.err = p, nil
	return p, nil
}

func (a *Authenticator) clientCtx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, a.cfg.HTTPClient)
}

func (a *Authenticator) discover(ctx context.Context) (*provider, error) {
	op, err := oidc.NewProvider(a.clientCtx(ctx), a.cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", a.cfg.IssuerURL, err)
	}
	var doc discoveryDoc
	if err := op.Claims(&doc); err != nil {
		return nil, fmt.Errorf("decode discovery document: %w", err)
	}
	if doc.JWKSURL == "" {
		return nil, errors.New("discovery document has no jwks_uri")
	}
	var algs []string
	for _, alg := range doc.Algs {
		for _, ok := range asymmetricAlgs {
			if alg == ok {
				algs = appendUnique(algs, alg)
			}
		}
	}
	if len(algs) == 0 {
		algs = []string{oidc.RS256}
	}
	p := &provider{
		issuer:     a.cfg.IssuerURL,
		keys:       newKeySet(doc.JWKSURL, a.cfg.HTTPClient, algs, a.cfg.Now, a.log),
		verifiers:  make(map[string]*oidc.IDTokenVerifier, len(a.audiences)),
		algs:       algs,
		endSession: doc.EndSession,
		deviceAuth: op.Endpoint().DeviceAuthURL,
		oauth: oauth2.Config{
			ClientID:     a.cfg.ClientID,
			ClientSecret: a.cfg.ClientSecret,
			Endpoint:     op.Endpoint(),
			RedirectURL:  a.cfg.RedirectURL,
			Scopes:       a.cfg.Scopes,
		},
	}
	for _, aud := range a.audiences {
		// Expiry (and nbf) are checked by the caller with ClockSkew: go-oidc has no leeway for exp.
		p.verifiers[aud] = oidc.NewVerifier(a.cfg.IssuerURL, p.keys, &oidc.Config{
			ClientID:             aud,
			SupportedSigningAlgs: algs,
			SkipExpiryCheck:      true,
		})
	}
	return p, nil
}

// Ready reports whether the provider's discovery document and keys are reachable.
func (a *Authenticator) Ready(ctx context.Context) error {
	p, err := a.provider(ctx)
	if err != nil {
		return err
	}
	if err := p.keys.ensure(a.clientCtx(ctx)); err != nil {
		return fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
	}
	return nil
}

// ClientConfig is what a CLI needs to log in, served at GET /api/v1/auth/config.
type ClientConfig struct {
	Issuer                      string   `json:"issuer"`
	ClientID                    string   `json:"client_id"`
	Scopes                      []string `json:"scopes"`
	DeviceAuthorizationEndpoint string   `json:"device_authorization_endpoint,omitempty"`
}

// ClientConfig returns the CLI login parameters. It attempts discovery (bounded
// by the HTTP client's timeout) to learn the device authorization endpoint and
// omits it when discovery fails.
func (a *Authenticator) ClientConfig() ClientConfig {
	cc := ClientConfig{Issuer: a.cfg.IssuerURL, ClientID: a.cfg.ClientID, Scopes: append([]string(nil), a.cfg.Scopes...)}
	if a.cfg.PublicClientID != "" {
		cc.ClientID = a.cfg.PublicClientID
	}
	if p, err := a.provider(context.Background()); err == nil {
		cc.DeviceAuthorizationEndpoint = p.deviceAuth
	}
	return cc
}

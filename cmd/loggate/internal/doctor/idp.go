package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// IdPConfig says which provider CheckIdP looks at.
type IdPConfig struct {
	Issuer   string
	ClientID string
	// RedirectURL is where the provider sends users back
	// (<public-url>/auth/callback).
	RedirectURL string
	// Client makes the requests. If nil, a client with a 10s timeout.
	Client *http.Client
	// Now is the local clock the provider's Date is compared with. If
	// nil, time.Now.
	Now func() time.Time
	// MaxSkew is the clock difference that still passes; beyond it, a
	// warning, and beyond 5×MaxSkew a failure (token lifetimes are minutes).
	// If zero, 30s.
	MaxSkew time.Duration
}

// discovery is the part of the provider's metadata doctor reads.
type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// CheckIdP fetches the discovery document and the signing keys, compares
// the issuer, the clock against the provider's Date header, and asks the
// authorization endpoint whether it knows the client and redirect URL
// (providers answer an unknown one with a 4xx page; a login page or a
// redirect says nothing is wrong, as far as anyone can tell from outside).
func CheckIdP(ctx context.Context, cfg IdPConfig) []Result {
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	skew := cfg.MaxSkew
	if skew == 0 {
		skew = 30 * time.Second
	}
	var rs []Result
	u := strings.TrimRight(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	var d discovery
	resp, err := get(ctx, client, u, &d)
	if err != nil {
		return append(rs, fail("idp discovery", "check --issuer and that this host can reach the provider (proxy, firewall, DNS)",
			"%s: %v", u, err))
	}
	if d.Issuer != cfg.Issuer {
		rs = append(rs, fail("idp discovery", fmt.Sprintf("set --issuer to exactly %q (trailing slash included)", d.Issuer),
			"issuer in the discovery document is %q, --issuer is %q: tokens would not verify", d.Issuer, cfg.Issuer))
	} else {
		rs = append(rs, ok("idp discovery", "%s answers, issuer matches", u))
	}
	rs = append(rs, clockSkew(resp, now(), skew))

	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	switch _, err := get(ctx, client, d.JWKSURI, &jwks); {
	case d.JWKSURI == "":
		rs = append(rs, fail("idp keys", "the provider's discovery document must name jwks_uri", "no jwks_uri"))
	case err != nil:
		rs = append(rs, fail("idp keys", "make "+d.JWKSURI+" reachable from this host", "%s: %v", d.JWKSURI, err))
	case len(jwks.Keys) == 0:
		rs = append(rs, fail("idp keys", "the provider publishes no signing key; check its key configuration", "%s holds no keys", d.JWKSURI))
	default:
		rs = append(rs, ok("idp keys", "%d signing key(s) at %s", len(jwks.Keys), d.JWKSURI))
	}
	return append(rs, checkRedirect(ctx, client, d.AuthorizationEndpoint, cfg.ClientID, cfg.RedirectURL))
}

// get fetches u as JSON into v; a non-200 answer is an error.
func get(ctx context.Context, c *http.Client, u string, v any) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp, fmt.Errorf("status %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return resp, fmt.Errorf("not JSON: %v", err)
	}
	return resp, nil
}

func clockSkew(resp *http.Response, now time.Time, max time.Duration) Result {
	const check = "clock skew"
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return warn(check, "", "the provider sent no usable Date header; cannot compare clocks")
	}
	d := now.Sub(date).Round(time.Second)
	if d < 0 {
		d = -d
	}
	fix := "run NTP (chrony or systemd-timesyncd) on this host and the provider's"
	switch {
	case d > 5*max:
		return fail(check, fix, "this clock and the provider's differ by %s: tokens would be refused as not yet valid or expired", d)
	case d > max:
		return warn(check, fix, "this clock and the provider's differ by %s (more than %s)", d, max)
	}
	return ok(check, "within %s of the provider's clock (Date header, 1s resolution)", d)
}

// checkRedirect asks the authorization endpoint for a code flow with our
// client and redirect URL, without following redirects.
func checkRedirect(ctx context.Context, c *http.Client, endpoint, clientID, redirect string) Result {
	const check = "redirect url"
	if endpoint == "" {
		return fail(check, "the provider's discovery document must name authorization_endpoint", "no authorization_endpoint")
	}
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"loggate-doctor"}, "nonce": {"loggate-doctor"},
		// A PKCE challenge, as loggate sends, so that providers requiring it answer normally.
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	req, err := http.NewRequestWithContext(ctx, "GET", endpoint+"?"+q.Encode(), nil)
	if err != nil {
		return fail(check, "fix the provider's authorization_endpoint", "%v", err)
	}
	nc := *c
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := nc.Do(req)
	if err != nil {
		return warn(check, "make "+endpoint+" reachable to check the redirect URL", "%v", err)
	}
	resp.Body.Close()
	fix := fmt.Sprintf("register %s as a redirect URI of client %q at the provider (and check --public-url)", redirect, clientID)
	// Providers send errors back to a redirect URL only once they know it
	// is registered (RFC 6749 4.1.2.1); a client problem still fails.
	if loc, err := resp.Location(); err == nil && loc.Query().Get("error") != "" {
		if e := loc.Query().Get("error"); e == "unauthorized_client" || e == "invalid_client" {
			return fail(check, fmt.Sprintf("check --client-id %q and the client's settings at the provider", clientID),
				"the provider refused client %q: %s", clientID, e)
		}
		return ok(check, "the provider knows %s (it sent an error %q back to it, as it does for a registered URL)", redirect, loc.Query().Get("error"))
	}
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return fail(check, fix, "the provider refused an authorization request for %s (%s)", redirect, resp.Status)
	case resp.StatusCode < 400:
		return ok(check, "the provider accepts client %q with %s (a login page or redirect came back)", clientID, redirect)
	}
	return warn(check, "retry later; the provider failed", "the authorization endpoint answered %s", resp.Status)
}

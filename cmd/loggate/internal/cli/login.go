package cli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/api"
)

func loginCommand() *command {
	return &command{
		name:    "login",
		summary: "sign in from the terminal",
		usage:   "loggate login --server URL [--flow auto|device|browser] [--no-browser]",
		help: `Signs you in with the gateway's identity provider and stores the tokens in
$XDG_CONFIG_HOME/loggate/config.json (else ~/.config/loggate/config.json), mode 0600.
The gateway tells the client which provider, client id and scopes to use.

With the device flow (used when the provider offers it) you open a URL on any
device and enter the code shown. Otherwise a browser opens for the usual sign-in
and returns to a listener on 127.0.0.1. The ID token is refreshed automatically
with the refresh token when it expires.`,
		example: `  loggate login --server https://loggate.example.com
  loggate login --server https://loggate.example.com --flow browser --no-browser`,
		flags: func(fs *flag.FlagSet) {
			fs.String("server", "", "gateway URL (else $LOGGATE_SERVER, else the last one you logged in to)")
			fs.String("flow", "auto", "device, browser, or auto (device when the provider offers it)")
			fs.Bool("no-browser", false, "print the sign-in URL instead of opening a browser")
		},
		run: (*cli).login,
	}
}

// discovery is the part of the OpenID provider metadata the client needs.
type discovery struct {
	Issuer                      string `json:"issuer"`
	AuthorizationEndpoint       string `json:"authorization_endpoint"`
	TokenEndpoint               string `json:"token_endpoint"`
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint"`
}

func (c *cli) getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.client().Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach %s: %v", u, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return fmt.Errorf("GET %s: not the expected JSON: %w", u, err)
	}
	return nil
}

func (c *cli) login(ctx context.Context, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return exitcode.Usagef("login takes no arguments (got %q)", args[0])
	}
	flow := flagString(fs, "flow")
	if flow != "auto" && flow != "device" && flow != "browser" {
		return exitcode.Usagef("--flow must be auto, device or browser")
	}
	cfg, err := c.loadConfig()
	if err != nil {
		return err
	}
	server, err := c.serverURL(fs, cfg)
	if err != nil {
		return exitcode.Usagef("login needs the gateway: loggate login --server https://loggate.example.com")
	}
	var ac api.AuthConfig
	if err := c.getJSON(ctx, server+"/api/v1/auth/config", &ac); err != nil {
		return fmt.Errorf("ask %s how to sign in: %w (is --server the loggate gateway?)", server, err)
	}
	if ac.Issuer == "" || ac.ClientID == "" {
		return fmt.Errorf("%s did not name an identity provider and client id", server)
	}
	var disc discovery
	if err := c.getJSON(ctx, strings.TrimRight(ac.Issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return fmt.Errorf("discover the identity provider: %w", err)
	}
	if disc.Issuer != ac.Issuer {
		return fmt.Errorf("identity provider metadata names issuer %q, the gateway expects %q", disc.Issuer, ac.Issuer)
	}
	if disc.DeviceAuthorizationEndpoint == "" {
		disc.DeviceAuthorizationEndpoint = ac.DeviceAuthorizationEndpoint
	}
	scopes := ac.Scopes
	if len(scopes) == 0 {
		scopes = []string{"openid", "profile", "email", "groups", "offline_access"}
	}
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	oc := &oauth2.Config{ClientID: ac.ClientID, Scopes: scopes, Endpoint: oauth2.Endpoint{
		AuthURL: disc.AuthorizationEndpoint, TokenURL: disc.TokenEndpoint,
		DeviceAuthURL: disc.DeviceAuthorizationEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	octx := context.WithValue(ctx, oauth2.HTTPClient, c.client())

	var tok *oauth2.Token
	var nonce string
	switch {
	case flow == "device" && disc.DeviceAuthorizationEndpoint == "":
		return errors.New("the identity provider does not offer the device flow: use --flow browser")
	case flow == "device" || (flow == "auto" && disc.DeviceAuthorizationEndpoint != ""):
		tok, err = c.deviceLogin(octx, oc)
	default:
		if disc.AuthorizationEndpoint == "" {
			return errors.New("the identity provider offers neither the device flow nor an authorization endpoint")
		}
		tok, nonce, err = c.browserLogin(octx, oc, fs.Lookup("no-browser").Value.String() == "true")
	}
	if err != nil {
		return err
	}
	next := Config{Server: server, Issuer: ac.Issuer, ClientID: ac.ClientID, Scopes: scopes,
		Tokens: Tokens{TokenEndpoint: disc.TokenEndpoint}}
	if err := next.Tokens.update(tok); err != nil {
		return fmt.Errorf("sign-in: %w", err)
	}
	if nonce != "" {
		claims, _ := jwtClaims(next.Tokens.IDToken)
		if subtle.ConstantTimeCompare([]byte(claims.Nonce), []byte(nonce)) != 1 {
			return errors.New("sign-in: the ID token's nonce does not match this login; try again")
		}
	}
	me, err := (&apiClient{c: c, base: server, token: next.Tokens.IDToken}).me(ctx)
	if err != nil {
		return fmt.Errorf("the gateway refused the new token: %w", err)
	}
	if err := c.saveConfig(next); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Signed in to %s as %s.\n", server, meLabel(me))
	if len(me.Groups) > 0 {
		fmt.Fprintf(c.stdout, "Groups: %s\n", strings.Join(me.Groups, ", "))
	}
	return nil
}

func (c *cli) deviceLogin(ctx context.Context, oc *oauth2.Config) (*oauth2.Token, error) {
	da, err := oc.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("start the device sign-in: %w", oauthErr(err))
	}
	fmt.Fprintf(c.stderr, "To sign in, open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(c.stderr, "  (or open %s)\n", da.VerificationURIComplete)
	}
	fmt.Fprintln(c.stderr, "Waiting for you to approve... (Ctrl-C to stop)")
	tok, err := oc.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		switch {
		case errors.As(err, &re) && re.ErrorCode == "access_denied":
			return nil, &exitcode.Error{Code: exitcode.Denied, Err: errors.New("sign-in was denied at the identity provider")}
		case errors.As(err, &re) && re.ErrorCode == "expired_token", errors.Is(err, context.DeadlineExceeded):
			return nil, errors.New("the code expired before it was approved: run `loggate login` again")
		case errors.Is(err, context.Canceled):
			return nil, &exitcode.Error{Code: exitcode.Aborted}
		}
		return nil, fmt.Errorf("device sign-in: %w", oauthErr(err))
	}
	return tok, nil
}

// oauthErr keeps the provider's error code and description and drops the
// raw response body.
func oauthErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		if re.ErrorDescription != "" {
			return fmt.Errorf("%s: %s", re.ErrorCode, re.ErrorDescription)
		}
		return errors.New(re.ErrorCode)
	}
	return err
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

type callbackResult struct {
	code string
	err  error
}

// browserLogin runs the authorization-code flow with PKCE, state and nonce,
// receiving the code on a loopback listener (RFC 8252).
func (c *cli) browserLogin(ctx context.Context, oc *oauth2.Config, noBrowser bool) (*oauth2.Token, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("listen on 127.0.0.1 for the sign-in callback: %w", err)
	}
	loc := *oc
	loc.RedirectURL = fmt.Sprintf("http://127.0.0.1:%d/callback", ln.Addr().(*net.TCPAddr).Port)
	state, nonce, verifier := randomString(), randomString(), oauth2.GenerateVerifier()
	authURL := loc.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))

	results := make(chan callbackResult, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		var res callbackResult
		switch {
		case subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1:
			// Not our login (or a forged redirect): ignore it, keep waiting.
			http.Error(w, "unknown sign-in state", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			res.err = fmt.Errorf("the identity provider refused the sign-in: %s %s", q.Get("error"), q.Get("error_description"))
		case q.Get("code") == "":
			res.err = errors.New("the identity provider returned no code")
		default:
			res.code = q.Get("code")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'")
		msg := "You are signed in to loggate. You can close this tab and return to the terminal."
		if res.err != nil {
			msg = "Sign-in failed: " + res.err.Error()
		}
		fmt.Fprintf(w, "<!doctype html><title>loggate</title><p>%s</p>\n", html.EscapeString(msg))
		select {
		case results <- res:
		default:
		}
	})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	fmt.Fprintf(c.stderr, "To sign in, open this URL in your browser:\n  %s\n", authURL)
	if !noBrowser && c.openBrowser != nil {
		if err := c.openBrowser(ctx, authURL); err != nil {
			fmt.Fprintf(c.stderr, "Could not open a browser (%v); open the URL above yourself.\n", err)
		}
	}
	fmt.Fprintln(c.stderr, "Waiting for the browser to return... (Ctrl-C to stop)")
	timeout := time.NewTimer(10 * time.Minute)
	defer timeout.Stop()
	var res callbackResult
	select {
	case res = <-results:
	case <-ctx.Done():
		return nil, "", &exitcode.Error{Code: exitcode.Aborted}
	case <-timeout.C:
		return nil, "", errors.New("no sign-in within 10 minutes: run `loggate login` again")
	}
	if res.err != nil {
		return nil, "", res.err
	}
	tok, err := loc.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, "", fmt.Errorf("redeem the sign-in code: %w", oauthErr(err))
	}
	return tok, nonce, nil
}

// openSystemBrowser opens url with the platform's opener.
func openSystemBrowser(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.CommandContext(ctx, "open", url)
	case "windows":
		cmd = exec.CommandContext(ctx, "rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.CommandContext(ctx, "xdg-open", url)
	}
	return cmd.Run()
}

// meLabel is the signed-in person's name for a sentence.
func meLabel(m api.Me) string {
	name := m.Name
	if name == "" {
		name = m.Display
	}
	if m.Email != "" && m.Email != name {
		return fmt.Sprintf("%s <%s>", name, m.Email)
	}
	return name
}

func (a *apiClient) me(ctx context.Context) (api.Me, error) {
	var me api.Me
	err := a.do(ctx, http.MethodGet, "/api/v1/me", nil, &me)
	return me, err
}

func logoutCommand() *command {
	return &command{
		name:    "logout",
		summary: "forget the stored sign-in",
		usage:   "loggate logout",
		help:    "Removes the stored tokens from the config file. The server URL is kept.",
		example: "  loggate logout",
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			cfg, err := c.loadConfig()
			if err != nil {
				return err
			}
			if cfg.Tokens.IDToken == "" && cfg.Tokens.RefreshToken == "" {
				fmt.Fprintln(c.stdout, "Not signed in.")
				return nil
			}
			cfg.Tokens = Tokens{}
			if err := c.saveConfig(cfg); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Signed out of %s.\n", cfg.Server)
			return nil
		},
	}
}

func whoamiCommand() *command {
	return &command{
		name:    "whoami",
		summary: "show who the gateway thinks you are",
		usage:   "loggate whoami [--output text|json]",
		help:    "Asks the gateway who you are with your current token, and your groups.",
		example: "  loggate whoami\n  LOGGATE_TOKEN=... loggate whoami --server https://loggate.example.com",
		flags: func(fs *flag.FlagSet) {
			addServerFlags(fs)
			fs.String("output", "text", "text or json")
		},
		run: func(c *cli, ctx context.Context, fs *flag.FlagSet, args []string) error {
			a, err := c.session(ctx, fs)
			if err != nil {
				return err
			}
			me, err := a.me(ctx)
			if err != nil {
				return err
			}
			if flagString(fs, "output") == "json" {
				// The fields whoami has always printed, not the whole answer.
				return writeJSONOut(c.stdout, struct {
					ID       string   `json:"id"`
					Email    string   `json:"email"`
					Name     string   `json:"name"`
					Username string   `json:"username"`
					Display  string   `json:"display"`
					Groups   []string `json:"groups"`
					Via      string   `json:"via"`
				}{me.ID, me.Email, me.Name, me.Username, me.Display, me.Groups, me.Via})
			}
			fmt.Fprintf(c.stdout, "%s\nid:     %s\ngroups: %s\nserver: %s\n", meLabel(me), me.ID,
				strings.Join(me.Groups, ", "), a.base)
			return nil
		},
	}
}

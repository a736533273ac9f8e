package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/auth/devidp"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway"
	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
	"github.com/loggate/loggate/web"
)

// devClientID is the development provider's public client.
const devClientID = "loggate"

// serveHooks lets tests learn the gateway's URL and reach its parts.
type serveHooks struct {
	ready func(s *running)
}

// running is a started gateway, for tests and the banner.
type running struct {
	URL          string
	SourceURL    string            // --source-listen's, else ""
	SourceTokens map[string]string // stream -> token (dev only)
	Server       *gateway.Server
	IDP          *devidp.Provider
	Policy       *policy.Engine
	DataDir      string
}

func newLogger(c *serveConfig, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, exitcode.Usagef("--log-level: %v", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch c.LogFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, exitcode.Usagef("--log-format must be text or json")
}

// serveParts is a gateway being started. Each step of runServe fills its
// parts and returns its closer; runServe runs the closers in reverse, so the
// step list is both the start-up and (read backwards) the shutdown order.
type serveParts struct {
	c      *serveConfig
	getenv func(string) string
	log    *slog.Logger
	reg    *prometheus.Registry

	ln  net.Listener // listen
	pub *url.URL     // listen: the public URL

	issuer, clientID, publicClientID string                  // identity provider
	idp                              *devidp.Provider        // identity provider: nil unless --dev starts its own
	mounts                           map[string]http.Handler // identity provider

	sp        *stateParts         // state: audit trail, store, log hub (local or Redis)
	authn     *auth.Authenticator // identity
	pol       *policy.Engine      // policy
	srv       *gateway.Server     // pipeline; the authenticator's hooks read it once set
	notif     *serveNotifier      // pipeline
	runCtx    context.Context     // run: lives until shutdown, after the request context ends
	tokens    map[string]string   // demo seeding: stream -> source token
	hs        *http.Server        // HTTP
	served    chan error          // HTTP: the server's exit
	alerts    *serveAlerts        // pipeline: alert rules, kept alerts, receivers
	tlsConfig *tls.Config         // pipeline: TLS with certificate reload and source certificates (nil without --tls-cert)
	sourceURL string              // source listener: its URL (--source-listen), else ""
}

// serveStep starts one part; its closer (nil: nothing to undo) runs at
// shutdown.
type serveStep struct {
	name  string
	start func(ctx context.Context) (closer func(), err error)
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hooks *serveHooks) error {
	c, err := parseServeConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	if c.CheckConfig {
		return checkConfig(ctx, c, stdout)
	}
	privateUmask()
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := checkPermissions(c, log); err != nil {
		return err
	}
	p := &serveParts{c: c, getenv: getenv, log: log, reg: prometheus.NewRegistry(), mounts: map[string]http.Handler{},
		served: make(chan error, 1)}
	steps := []serveStep{
		{"listen", p.listen},
		{"identity provider", p.identityProvider},
		{"state", p.state},
		{"audit", p.audit},
		{"identity", p.identity},
		{"policy", p.policy},
		{"pipeline", p.pipeline},
		{"run", p.run},
		{"demo seeding", p.seedDemo},
		{"source listener", p.sourceListener},
		{"HTTP", p.http},
		{"demo source", p.demoSource},
	}
	var closers []func()
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}()
	for _, step := range steps {
		closer, err := step.start(ctx)
		if err != nil {
			return err
		}
		if closer != nil {
			closers = append(closers, closer)
		}
	}

	r := &running{URL: p.pub.String(), SourceURL: p.sourceURL, SourceTokens: p.tokens, Server: p.srv, IDP: p.idp, Policy: p.pol, DataDir: c.Data}
	printBanner(stdout, c, r)
	log.Info("loggate listening", "url", p.pub.String(), "dev", c.Dev, "policy_revision", p.pol.Revision())
	if hooks != nil && hooks.ready != nil {
		hooks.ready(r)
	}

	select {
	case err := <-p.served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: ending tails, draining requests")
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
	closers = nil
	log.Info("stopped")
	return nil
}

// listen binds the address first: the public URL (and so the development
// issuer) may depend on the port actually bound.
func (p *serveParts) listen(context.Context) (func(), error) {
	c := p.c
	ln, localURL, err := listenOn(c, "--listen", c.Listen)
	if err != nil {
		return nil, err
	}
	publicURL := c.PublicURL
	if publicURL == "" {
		publicURL = localURL
	}
	pub, err := url.Parse(strings.TrimRight(publicURL, "/"))
	if err != nil || pub.Host == "" || (pub.Scheme != "http" && pub.Scheme != "https") {
		ln.Close()
		return nil, exitcode.Usagef("--public-url %q must be an absolute http(s) URL", publicURL)
	}
	p.ln, p.pub = ln, pub
	return func() { ln.Close() }, nil
}

// identityProvider settles which provider signs people in. With --dev and
// no --issuer the development provider starts here, mounted on the
// gateway's own listener; with --issuer, --dev trusts that provider
// (another replica's, say) instead.
func (p *serveParts) identityProvider(context.Context) (func(), error) {
	c := p.c
	p.issuer, p.clientID, p.publicClientID = c.Issuer, c.ClientID, c.PublicClientID
	if c.Dev {
		if p.clientID == "" {
			p.clientID = devClientID
		}
		if p.publicClientID == "" {
			p.publicClientID = devClientID
		}
	}
	if !c.Dev || p.issuer != "" {
		return nil, nil
	}
	pub := p.pub.String()
	p.issuer = pub + "/dev/oidc"
	idp, err := devidp.New(devidp.Config{Issuer: p.issuer, Users: devidp.DemoUsers(), Logger: p.log.With("component", "devidp"),
		Clients: []devidp.Client{{ID: devClientID, RedirectURIs: []string{pub + "/auth/callback"},
			PostLogoutRedirectURIs: []string{pub + "/"}}}})
	if err != nil {
		return nil, fmt.Errorf("development identity provider: %w", err)
	}
	p.idp = idp
	p.mounts["/dev/oidc/"] = idp
	return func() { idp.Close() }, nil
}

// state opens the audit trail, the request/grant store and the log hub:
// local files, or Redis (--redis).
func (p *serveParts) state(ctx context.Context) (func(), error) {
	sp, err := openState(ctx, p.c, p.log)
	if err != nil {
		return nil, err
	}
	p.sp = sp
	return func() { sp.Close() }, nil
}

// audit starts the audit trail's operations (checkpoints, sinks,
// retention) on the local or the shared trail.
func (p *serveParts) audit(ctx context.Context) (func(), error) {
	c := p.c
	if local, ok := p.sp.audit.(*audit.Store); ok {
		return startAudit(ctx, c.AuditOps, local, filepath.Join(c.Data, "audit"), p.getenv, p.reg, p.log)
	}
	if p.sp.redis != nil {
		return startSharedAudit(ctx, c.AuditOps, p.sp.redis, p.getenv, p.reg, p.log)
	}
	return nil, nil
}

// identity builds the authenticator: OIDC relying party, sessions, bearer
// tokens. Its events go to the gateway once the pipeline step has made it.
func (p *serveParts) identity(context.Context) (func(), error) {
	c, sp := p.c, p.sp
	sessionKeys, err := loadSessionKeys(c)
	if err != nil {
		return nil, err
	}
	groupMap, err := loadGroupMap(c.GroupMapFile)
	if err != nil {
		return nil, err
	}
	sessions, err := sp.sessionStore(c)
	if err != nil {
		return nil, err
	}
	pub := p.pub.String()
	authn, err := auth.New(auth.Config{
		IssuerURL: p.issuer, ClientID: p.clientID, ClientSecret: c.clientSecret, PublicClientID: p.publicClientID,
		RedirectURL: pub + "/auth/callback", GroupsClaim: c.GroupsClaim, GroupMapping: groupMap,
		AllowedEmailDomains: splitList(c.AllowedDomains), SessionKeys: sessionKeys, SecureCookies: p.pub.Scheme == "https",
		SessionIdle: c.SessionIdle, SessionAbsolute: c.SessionAbsolute,
		ClientAddr: func(r *http.Request) string { return p.srv.ClientAddr(r) },
		OnEvent: func(ctx context.Context, ev auth.Event) error {
			if p.srv == nil {
				return errors.New("gateway not started")
			}
			return p.srv.RecordAuth(ctx, ev)
		},
		HTTPClient:  devProviderClient(p.idp, p.issuer), // nil without --dev
		ConsumeOnce: sp.consumeOnce(),                   // nil on one machine
		Sessions:    sessions,
		Logger:      p.log.With("component", "auth"),
	})
	if err != nil {
		return nil, fmt.Errorf("authenticator: %w", err)
	}
	p.authn = authn
	return func() { authn.Close() }, nil
}

// policy loads the Rego policies (the embedded defaults, or --policies).
func (p *serveParts) policy(ctx context.Context) (func(), error) {
	pcfg := policy.Config{FS: policies.FS, Logger: p.log.With("component", "policy"), RunTestsOnLoad: true, Timeout: p.c.PolicyTimeout}
	if p.c.Policies != "" {
		pcfg.Dir = p.c.Policies
	}
	pol, err := policy.New(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("load policies: %w", err)
	}
	p.pol = pol
	return nil, nil
}

// pipeline builds the gateway itself with what it owns on the way of a line
// (redaction) and of a request (notifier, UI pages), then closes the views
// the last stop interrupted.
func (p *serveParts) pipeline(ctx context.Context) (func(), error) {
	c, sp := p.c, p.sp
	red, redByEnv, err := loadRedaction(c.RedactionFile)
	if err != nil {
		return nil, err
	}

	certSources, err := loadCertSources(c, p.log.With("component", "tls"))
	if err != nil {
		return nil, err
	}
	if c.TLSCert != "" {
		if p.tlsConfig, err = serverTLS(c, certSources, p.log.With("component", "tls")); err != nil {
			return nil, err
		}
	}
	proxies, err := parsePrefixes(c.TrustedProxies)
	if err != nil {
		return nil, err
	}
	pages, err := web.New(web.Config{Logger: p.log.With("component", "web")})
	if err != nil {
		return nil, fmt.Errorf("web UI: %w", err)
	}
	notifier, err := newNotifier(ctx, c, p.pub.String(), sp.notifyRedis(), p.log)
	if err != nil {
		return nil, err
	}
	p.notif = notifier
	alerts, err := newAlerts(ctx, c, sp, p.reg, p.log)
	if err != nil {
		return func() { notifier.Close() }, err
	}
	p.alerts = alerts
	alertLink := func(a alert.Alert) string { return p.srv.AlertLink(a) }
	alertReceivers, err := alerts.receivers(c, alertLink, p.reg, p.log)
	if err != nil {
		return func() { alerts.Close(); notifier.Close() }, err
	}
	spool, viewCounts, err := openSpool(c, sp.audit, p.log)
	if err != nil {
		return func() { alerts.Close(); notifier.Close() }, err
	}
	closer := func() {
		spool.Close()
		alerts.Close()
		notifier.Close()
	}
	srv, err := gateway.New(gateway.Config{
		Alerts: alerts.engine, AlertStore: alerts.kept, AlertReceivers: alertReceivers, AlertRulesFile: alerts.file,
		PublicURL: p.pub, AllowedOrigins: splitList(c.AllowedOrigins), TrustedProxies: proxies, Notifier: notifier.Notifier(),
		Auth: p.authn, Sessions: p.authn, Policy: p.pol, Audit: sp.audit, Store: sp.store, Hub: sp.hub, Redactor: red,
		RedactorsByEnv: redByEnv, Pages: pages, Mounts: p.mounts, Registry: p.reg, Logger: p.log, DigestKind: "sha256-chained",
		Limits: gateway.Limits{MaxTailsPerUser: c.MaxTailsPerUser, MaxTailsPerStream: c.MaxTailsPerStream,
			IngestRate: c.IngestRate, PublicAuditRate: c.PublicAuditRate, PublicAuditBurst: c.PublicAuditBurst},
		TailProgressInterval: c.TailProgressInterval, IdentityRecheckInterval: c.IdentityRecheck,
		VerifyAudit: sp.verifyAudit, Broadcast: sp.broadcast, ReadyChecks: sp.readyChecks, ReadyNotes: sp.readyNotes(),
		ReplicaID: sp.replicaID(), Spool: spool, ViewCounts: viewCounts, ViewCountsInterval: c.ViewCountsInterval,
		CertSources:    certSourcesFunc(certSources),
		SourceAuthBoth: c.SourceRequireBoth, SeparateSources: c.SourceListen != "",
	})
	if err != nil {
		return closer, err
	}
	p.srv = srv
	notifier.bind(srv)
	alerts.engine.SetSink(srv)
	// With --redis the alerts are the cluster's, held by the leader: a
	// replica starting up must not resolve them (whichever replica leads
	// next adopts them, and resolves them once their lines have stopped).
	if !alerts.shared {
		if n, err := srv.ResolveStaleAlerts(ctx); err != nil {
			return closer, fmt.Errorf("alerts: %w", err)
		} else if n > 0 {
			p.log.Warn("resolved alerts left open by the last stop", "alerts", n)
		}
	}
	if n, err := srv.RecoverInterruptedViews(ctx); err != nil {
		return closer, err
	} else if n > 0 {
		p.log.Warn("closed views interrupted by the last stop", "views", n)
	}
	return closer, nil
}

// run starts what runs until shutdown: the gateway's loops, the state's
// (replica feeds), and the policy watch (--policies). Their context
// outlives the request context so shutdown can end them in order; the
// closer waits for each of them.
func (p *serveParts) run(ctx context.Context) (func(), error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.runCtx = runCtx
	runDone := make(chan struct{})
	go func() { p.srv.Run(runCtx); close(runDone) }()
	waitState := p.sp.start(runCtx, p.srv)
	waitAlerts := p.alerts.run(runCtx, p.srv, p.log)
	watchDone := make(chan struct{})
	if p.c.Policies != "" {
		go func() {
			defer close(watchDone)
			err := p.pol.Watch(runCtx, func(ev policy.ReloadEvent) { p.srv.PolicyChanged(runCtx, ev) })
			if err != nil && runCtx.Err() == nil {
				p.log.Error("policy watch stopped", "err", err)
			}
		}()
	} else {
		close(watchDone)
	}
	return func() {
		cancel()
		<-runDone
		<-watchDone
		waitAlerts()
		waitState()
		// Flush aggregated authentication failures while the audit trail is open.
		if err := p.authn.Close(); err != nil {
			p.log.Warn("close authenticator", "err", err)
		}
	}, nil
}

// http serves the gateway on the bound listener. Its closer ends the tails
// (hijacked connections the HTTP server does not track), then drains
// requests.
func (p *serveParts) http(context.Context) (func(), error) {
	hs := p.serveOn(p.ln, p.srv)
	p.hs = hs
	return func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		p.srv.Shutdown(shutCtx)
		if err := hs.Shutdown(shutCtx); err != nil {
			p.log.Warn("http shutdown", "err", err)
		}
	}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range splitList(s) {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, exitcode.Usagef("--trusted-proxies: %q is not an address or CIDR", p)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, exitcode.Usagef("--trusted-proxies: %q is not a CIDR", p)
		}
		out = append(out, pf.Masked())
	}
	return out, nil
}

// loadSessionKeys reads keys (hex or raw lines, newest first) from
// --session-key-file or LOGGATE_SESSION_KEYS, else the data directory's
// generated key file (created with mode 0600).
func loadSessionKeys(c *serveConfig) ([][]byte, error) {
	path := c.SessionKeyFile
	if path == "" {
		path = filepath.Join(c.Data, "keys", "session.key")
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return nil, err
			}
			var k [32]byte
			_, _ = rand.Read(k[:])
			if err := os.WriteFile(path, []byte(hex.EncodeToString(k[:])+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("generate session key: %w", err)
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("session keys: %w", err)
	}
	var keys [][]byte
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := hex.DecodeString(line)
		if err != nil {
			k = []byte(line)
		}
		if len(k) < 32 {
			return nil, fmt.Errorf("session keys in %s: each key needs at least 32 bytes", path)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("session keys: %s holds no key", path)
	}
	return keys, nil
}

func loadGroupMap(path string) (map[string][]string, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("group map: %w", err)
	}
	var m map[string][]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("group map %s: %w", path, err)
	}
	return m, nil
}

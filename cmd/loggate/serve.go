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
	"github.com/loggate/loggate/gateway/store"
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

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, hooks *serveHooks) error {
	c, err := parseServeConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	// Listen first: the public URL (and so the development issuer) may
	// depend on the port actually bound.
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return exitcode.Usagef("--listen %q: %v", c.Listen, err)
	}
	if c.Dev && !c.DevAllowRemote && !isLoopback(host) {
		return exitcode.Usagef("--dev listens only on loopback (its demo users and password grant are for a laptop); " +
			"use --listen 127.0.0.1:PORT, or --dev-allow-remote if you really mean it")
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	publicURL := c.PublicURL
	if publicURL == "" {
		addr := ln.Addr().(*net.TCPAddr)
		h := host
		if h == "" || h == "0.0.0.0" || h == "::" {
			h = "127.0.0.1"
		}
		publicURL = fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(h, fmt.Sprint(addr.Port)))
	}
	pub, err := url.Parse(strings.TrimRight(publicURL, "/"))
	if err != nil || pub.Host == "" || (pub.Scheme != "http" && pub.Scheme != "https") {
		return exitcode.Usagef("--public-url %q must be an absolute http(s) URL", publicURL)
	}

	reg := prometheus.NewRegistry()
	var srv *gateway.Server // set below; the authenticator's hooks need it

	// Identity.
	issuer, clientID, publicClientID := c.Issuer, c.ClientID, c.PublicClientID
	mounts := map[string]http.Handler{}
	var idp *devidp.Provider
	if c.Dev {
		if clientID == "" {
			clientID = devClientID
		}
		if publicClientID == "" {
			publicClientID = devClientID
		}
	}
	// With --issuer, --dev trusts that provider (another replica's, say)
	// instead of starting its own.
	if c.Dev && issuer == "" {
		issuer = pub.String() + "/dev/oidc"
		idp, err = devidp.New(devidp.Config{Issuer: issuer, Users: devidp.DemoUsers(), Logger: log.With("component", "devidp"),
			Clients: []devidp.Client{{ID: devClientID, RedirectURIs: []string{pub.String() + "/auth/callback"},
				PostLogoutRedirectURIs: []string{pub.String() + "/"}}}})
		if err != nil {
			return fmt.Errorf("development identity provider: %w", err)
		}
		defer idp.Close()
		mounts["/dev/oidc/"] = idp
	}
	// Audit trail, state, log pipeline: local files, or Redis (--redis).
	sp, err := openState(ctx, c, log)
	if err != nil {
		return err
	}
	defer sp.Close()
	aud, st, hub := sp.audit, sp.store, sp.hub
	if local, ok := aud.(*audit.Store); ok {
		stopAudit, err := startAudit(ctx, c.AuditOps, local, filepath.Join(c.Data, "audit"), getenv, reg, log)
		if err != nil {
			return err
		}
		defer stopAudit()
	} else if sp.redis != nil {
		stopAudit, err := startSharedAudit(ctx, c.AuditOps, sp.redis, getenv, reg, log)
		if err != nil {
			return err
		}
		defer stopAudit()
	}
	sessionKeys, err := loadSessionKeys(c)
	if err != nil {
		return err
	}
	groupMap, err := loadGroupMap(c.GroupMapFile)
	if err != nil {
		return err
	}
	sessions, err := sp.sessionStore(c)
	if err != nil {
		return err
	}
	authn, err := auth.New(auth.Config{
		IssuerURL: issuer, ClientID: clientID, ClientSecret: c.clientSecret, PublicClientID: publicClientID,
		RedirectURL: pub.String() + "/auth/callback", GroupsClaim: c.GroupsClaim, GroupMapping: groupMap,
		AllowedEmailDomains: splitList(c.AllowedDomains), SessionKeys: sessionKeys, SecureCookies: pub.Scheme == "https",
		SessionIdle: c.SessionIdle, SessionAbsolute: c.SessionAbsolute,
		ClientAddr: func(r *http.Request) string { return srv.ClientAddr(r) },
		OnEvent: func(ctx context.Context, ev auth.Event) error {
			if srv == nil {
				return errors.New("gateway not started")
			}
			return srv.RecordAuth(ctx, ev)
		},
		HTTPClient:  devProviderClient(idp, issuer), // nil without --dev
		ConsumeOnce: sp.consumeOnce(),               // nil on one machine
		Sessions:    sessions,
		Logger:      log.With("component", "auth"),
	})
	if err != nil {
		return fmt.Errorf("authenticator: %w", err)
	}
	defer authn.Close()

	// Policy.
	pcfg := policy.Config{FS: policies.FS, Logger: log.With("component", "policy"), RunTestsOnLoad: true}
	if c.Policies != "" {
		pcfg.Dir = c.Policies
	}
	pol, err := policy.New(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("load policies: %w", err)
	}

	red, redByEnv, err := loadRedaction(c.RedactionFile)
	if err != nil {
		return err
	}

	proxies, err := parsePrefixes(c.TrustedProxies)
	if err != nil {
		return err
	}
	pages, err := web.New(web.Config{Logger: log.With("component", "web")})
	if err != nil {
		return fmt.Errorf("web UI: %w", err)
	}
	notifier, err := newNotifier(ctx, c, pub.String(), sp.notifyRedis(), log)
	if err != nil {
		return err
	}
	defer notifier.Close()
	alerts, err := newAlerts(ctx, c, sp, reg, log)
	if err != nil {
		return err
	}
	defer alerts.Close()
	alertLink := func(a alert.Alert) string { return srv.AlertLink(a) }
	alertReceivers, err := alerts.receivers(c, alertLink, reg, log)
	if err != nil {
		return err
	}
	spool, viewCounts, err := openSpool(c, aud, log)
	if err != nil {
		return err
	}
	defer spool.Close()
	srv, err = gateway.New(gateway.Config{
		Alerts: alerts.engine, AlertStore: alerts.kept, AlertReceivers: alertReceivers, AlertRulesFile: alerts.file,
		PublicURL: pub, AllowedOrigins: splitList(c.AllowedOrigins), TrustedProxies: proxies, Notifier: notifier.Notifier(),
		Auth: authn, Sessions: authn, Policy: pol, Audit: aud, Store: st, Hub: hub, Redactor: red, RedactorsByEnv: redByEnv,
		Pages: pages, Mounts: mounts, Registry: reg, Logger: log, DigestKind: "sha256-chained",
		Limits: gateway.Limits{MaxTailsPerUser: c.MaxTailsPerUser, MaxTailsPerStream: c.MaxTailsPerStream,
			IngestRate: c.IngestRate},
		TailProgressInterval: c.TailProgressInterval, IdentityRecheckInterval: c.IdentityRecheck,
		VerifyAudit: sp.verifyAudit, Broadcast: sp.broadcast, ReadyChecks: sp.readyChecks, ReadyNotes: sp.readyNotes(),
		ReplicaID: sp.replicaID(), Spool: spool, ViewCounts: viewCounts, ViewCountsInterval: c.ViewCountsInterval,
	})
	if err != nil {
		return err
	}
	notifier.bind(srv)
	alerts.engine.SetSink(srv)
	// With --redis the alerts are the cluster's, held by the leader: a
	// replica starting up must not resolve them.
	if !alerts.shared {
		if n, err := srv.ResolveStaleAlerts(ctx); err != nil {
			return fmt.Errorf("alerts: %w", err)
		} else if n > 0 {
			log.Warn("resolved alerts left open by the last stop", "alerts", n)
		}
	}
	if n, err := srv.RecoverInterruptedViews(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("closed views interrupted by the last stop", "views", n)
	}

	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	runDone := make(chan struct{})
	go func() { srv.Run(runCtx); close(runDone) }()
	waitState := sp.start(runCtx, srv)
	alerts.run(runCtx, srv, log)
	if c.Policies != "" {
		go func() {
			err := pol.Watch(runCtx, func(ev policy.ReloadEvent) { srv.PolicyChanged(runCtx, ev) })
			if err != nil && runCtx.Err() == nil {
				log.Error("policy watch stopped", "err", err)
			}
		}()
	}

	system := audit.Actor{Kind: audit.ActorSystem, Subject: "loggate"}
	tokens := map[string]string{}
	if c.Dev {
		if c.DevSourceToken != "" {
			// One source, bound to both demo streams, with the fixed token.
			streams := []store.StreamRef{{Service: "checkout", Env: "staging"}, {Service: "checkout", Env: "prod"}}
			if _, err := srv.CreateSource(ctx, system, "demo checkout", c.DevSourceToken, streams); err != nil {
				return fmt.Errorf("create demo source: %w", err)
			}
			tokens["checkout/staging"], tokens["checkout/prod"] = c.DevSourceToken, c.DevSourceToken
		} else {
			for _, env := range []string{"staging", "prod"} {
				stream := []store.StreamRef{{Service: "checkout", Env: env}}
				tok, err := devSourceToken(c, env, false)
				if err == nil {
					_, err = srv.CreateSource(ctx, system, "demo checkout/"+env, tok, stream)
				}
				if err != nil {
					// The saved demo token was revoked: mint a new one.
					if tok, err = devSourceToken(c, env, true); err == nil {
						_, err = srv.CreateSource(ctx, system, "demo checkout/"+env, tok, stream)
					}
				}
				if err != nil {
					return fmt.Errorf("create demo source: %w", err)
				}
				tokens["checkout/"+env] = tok
			}
		}
	}

	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn), BaseContext: func(net.Listener) context.Context { return runCtx }}
	serveErr := make(chan error, 1)
	go func() {
		if c.TLSCert != "" {
			hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			serveErr <- hs.ServeTLS(ln, c.TLSCert, c.TLSKey)
			return
		}
		serveErr <- hs.Serve(ln)
	}()

	if c.Dev && c.DevDemoLogs {
		go runDemoSource(runCtx, pub.String(), tokens, log.With("component", "demo-source"))
	}
	r := &running{URL: pub.String(), SourceTokens: tokens, Server: srv, IDP: idp, Policy: pol, DataDir: c.Data}
	printBanner(stdout, c, r)
	log.Info("loggate listening", "url", pub.String(), "dev", c.Dev, "policy_revision", pol.Revision())
	if hooks != nil && hooks.ready != nil {
		hooks.ready(r)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: ending tails, draining requests")
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer shutCancel()
	srv.Shutdown(shutCtx)
	if err := hs.Shutdown(shutCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	cancel()
	<-runDone
	waitState()
	// Flush aggregated authentication failures while the audit trail is open.
	if err := authn.Close(); err != nil {
		log.Warn("close authenticator", "err", err)
	}
	log.Info("stopped")
	return nil
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

// devSourceToken is the demo source's token kept in the data directory
// (mode 0600) so it survives restarts, created once, or anew when fresh.
func devSourceToken(c *serveConfig, env string, fresh bool) (string, error) {
	path := filepath.Join(c.Data, "keys", "dev-source-checkout-"+env+".token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 && !fresh {
		return strings.TrimSpace(string(b)), nil
	}
	tok := gateway.NewSourceToken()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save demo source token: %w", err)
	}
	return tok, nil
}

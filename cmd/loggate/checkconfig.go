package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/cluster"
	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
)

// checkConfig is `serve --check-config`: it validates every setting and
// loads every file serve would (keys, secrets, maps, policies, TLS pair)
// without touching --data, Redis or the identity provider (`loggate
// doctor` reaches those), then exits: 0 and "configuration ok", or the
// first problem.
func checkConfig(ctx context.Context, c *serveConfig, stdout io.Writer) error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return exitcode.Usagef("--listen %q: %v", c.Listen, err)
	}
	if c.SourceListen != "" {
		if _, err := checkListen(c, "--source-listen", c.SourceListen); err != nil {
			return err
		}
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return exitcode.Usagef("--public-url %q must be an absolute http(s) URL", c.PublicURL)
		}
	}
	if c.Issuer != "" {
		if u, err := url.Parse(c.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return exitcode.Usagef("--issuer %q must be an absolute URL", c.Issuer)
		}
	}
	if _, err := parseRetention(c.LogRetention); err != nil {
		return err
	}
	if _, err := parsePrefixes(c.TrustedProxies); err != nil {
		return err
	}
	if c.Redis != "" {
		if c.SessionKeyFile == "" || c.AuditSigningKeyFile == "" {
			return exitcode.Usagef("--redis needs --session-key-file and --audit-signing-key-file, the same files on every replica")
		}
		if _, err := cluster.LoadSigningKey(c.AuditSigningKeyFile); err != nil {
			return exitcode.Usagef("--audit-signing-key-file: %v", err)
		}
		cl, err := cluster.Dial(c.Redis) // parses the URL; connects only when used
		if err != nil {
			return exitcode.Usagef("--redis: %v", err)
		}
		cl.Close()
	}
	if c.SessionKeyFile != "" {
		if _, err := loadSessionKeys(c); err != nil {
			return err
		}
	}
	if _, err := loadGroupMap(c.GroupMapFile); err != nil {
		return err
	}
	if _, _, err := loadRedaction(c.RedactionFile); err != nil {
		return err
	}
	if _, err := loadCertSources(c, slog.New(slog.DiscardHandler)); err != nil {
		return err
	}
	if c.TLSCert != "" {
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	if c.WebhookURL != "" {
		if c.WebhookFormat != "json" && c.WebhookFormat != "slack" {
			return exitcode.Usagef("--webhook-format must be json or slack")
		}
		for _, k := range splitList(c.WebhookEvents) {
			if !slices.Contains(notifyKinds, k) {
				return exitcode.Usagef("--webhook-events: unknown event %q", k)
			}
		}
	}
	pcfg := policy.Config{FS: policies.FS, RunTestsOnLoad: true, Dir: c.Policies}
	if _, err := policy.New(ctx, pcfg); err != nil {
		return fmt.Errorf("load policies: %w", err)
	}
	var notes []string
	if c.backlogKeys != nil {
		notes = append(notes, "backlog sealed with key "+c.backlogKeys.NewestID())
	}
	if c.Redis != "" {
		notes = append(notes, "replicated through Redis")
	}
	if c.SourceListen != "" {
		notes = append(notes, "sources on "+c.SourceListen)
	}
	fmt.Fprintf(stdout, "configuration ok")
	if len(notes) > 0 {
		fmt.Fprintf(stdout, " (%s)", strings.Join(notes, "; "))
	}
	fmt.Fprintln(stdout)
	return nil
}

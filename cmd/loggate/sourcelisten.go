package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// checkListen validates a listen address (flag names it in messages) and
// returns its host: --dev listens only on loopback unless told otherwise.
func checkListen(c *serveConfig, flag, addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", exitcode.Usagef("%s %q: %v", flag, addr, err)
	}
	if c.Dev && !c.DevAllowRemote && !isLoopback(host) {
		return "", exitcode.Usagef("--dev listens only on loopback (its demo users and password grant are for a laptop); "+
			"use %s 127.0.0.1:PORT, or --dev-allow-remote if you really mean it", flag)
	}
	return host, nil
}

// listenOn binds addr (flag names it in messages) and returns the
// listener with the URL it is reached at from this host (an unspecified
// address as 127.0.0.1, the port as bound).
func listenOn(c *serveConfig, flag, addr string) (net.Listener, string, error) {
	host, err := checkListen(c, flag, addr)
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", strings.TrimPrefix(flag, "--"), err)
	}
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return ln, fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))), nil
}

// serveOn serves h on ln (with TLS when configured) until shut down; a
// failure is reported on p.served, the first one ending serve.
func (p *serveParts) serveOn(ln net.Listener, h http.Handler) *http.Server {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelWarn), BaseContext: func(net.Listener) context.Context { return p.runCtx }}
	go func() {
		var err error
		if p.tlsConfig != nil {
			hs.TLSConfig = p.tlsConfig
			err = hs.ServeTLS(ln, "", "") // the certificate comes from GetCertificate
		} else {
			err = hs.Serve(ln)
		}
		select {
		case p.served <- err:
		default:
		}
	}()
	return hs
}

// sourceListener serves the source routes (ingest, control levels) on
// --source-listen, with the same TLS and client-certificate settings as
// --listen; the gateway then answers 404 for them on --listen, and this
// listener 404 for everything else (health excepted).
func (p *serveParts) sourceListener(context.Context) (func(), error) {
	c := p.c
	if c.SourceListen == "" {
		return nil, nil
	}
	ln, url, err := listenOn(c, "--source-listen", c.SourceListen)
	if err != nil {
		return nil, err
	}
	p.sourceURL = url
	hs := p.serveOn(ln, p.srv.SourceHandler())
	p.log.Info("sources listening", "url", p.sourceURL)
	return func() {
		shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := hs.Shutdown(shutCtx); err != nil {
			p.log.Warn("source listener shutdown", "err", err)
		}
	}, nil
}

// ingestURL is where sources send: the source listener's URL, else the
// public one.
func (p *serveParts) ingestURL() string {
	if p.sourceURL != "" {
		return p.sourceURL
	}
	return p.pub.String()
}

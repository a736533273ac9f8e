package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// Config is what `loggate login` stores in the user's config directory.
// It holds tokens, so the file is written with mode 0600.
type Config struct {
	Server   string   `json:"server"`
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes,omitempty"`
	Tokens   Tokens   `json:"tokens"`
}

type Tokens struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Expiry is the ID token's exp claim.
	Expiry time.Time `json:"expiry"`
	// TokenEndpoint is where the refresh token is redeemed.
	TokenEndpoint string `json:"token_endpoint,omitempty"`
}

// configPath is $LOGGATE_CONFIG, else $XDG_CONFIG_HOME/loggate/config.json,
// else ~/.config/loggate/config.json.
func (c *cli) configPath() (string, error) {
	if p := c.getenv("LOGGATE_CONFIG"); p != "" {
		return p, nil
	}
	if d := c.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "loggate", "config.json"), nil
	}
	home := c.getenv("HOME")
	if home == "" {
		var err error
		if home, err = os.UserHomeDir(); err != nil {
			return "", errors.New("cannot find a config directory: set XDG_CONFIG_HOME or HOME")
		}
	}
	return filepath.Join(home, ".config", "loggate", "config.json"), nil
}

// loadConfig reads the config; a missing file is an empty config.
func (c *cli) loadConfig() (Config, error) {
	var cfg Config
	p, err := c.configPath()
	if err != nil {
		return cfg, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("config %s is not valid JSON (%v): delete it and run `loggate login`", p, err)
	}
	return cfg, nil
}

// saveConfig writes the config atomically with mode 0600 in a 0700 directory.
func (c *cli) saveConfig(cfg Config) error {
	p, err := c.configPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".config-*.json")
	if err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// addServerFlags declares the flags every API command shares.
func addServerFlags(fs *flag.FlagSet) {
	fs.String("server", "", "gateway URL (else $LOGGATE_SERVER, else the one you logged in to)")
	fs.String("token-file", "", "read the bearer token from this file (else $LOGGATE_TOKEN, else your login)")
}

func flagString(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// flagInt reads an int flag declared on fs.
func flagInt(fs *flag.FlagSet, name string) int {
	return fs.Lookup(name).Value.(flag.Getter).Get().(int)
}

// requiredFlag is a text flag's value, trimmed; without one it is a usage
// error saying missing.
func requiredFlag(fs *flag.FlagSet, name, missing string) (string, error) {
	v := strings.TrimSpace(flagString(fs, name))
	if v == "" {
		return "", exitcode.Usagef("%s", missing)
	}
	return v, nil
}

// durationFlag is a duration flag's value, at least a second; otherwise a
// usage error with an example (like).
func durationFlag(fs *flag.FlagSet, name, like string) (time.Duration, error) {
	d, err := time.ParseDuration(flagString(fs, name))
	if err != nil || d < time.Second {
		return 0, exitcode.Usagef("--%s %q must be a duration like %s", name, flagString(fs, name), like)
	}
	return d, nil
}

// normaliseServer validates a server URL and drops a trailing slash.
func normaliseServer(s string) (string, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "/")
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", exitcode.Usagef("server %q must be an http(s) URL like https://loggate.example.com", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", exitcode.Usagef("server %q must not carry credentials, a query or a fragment", s)
	}
	return s, nil
}

// plainRemote reports an http:// server that is not on this machine.
func plainRemote(server string) bool {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return false
	}
	ip := net.ParseIP(h)
	return ip == nil || !ip.IsLoopback()
}

// serverURL resolves the server: --server, $LOGGATE_SERVER, the config.
func (c *cli) serverURL(fs *flag.FlagSet, cfg Config) (string, error) {
	for _, s := range []string{flagString(fs, "server"), c.getenv("LOGGATE_SERVER"), cfg.Server} {
		if s != "" {
			server, err := normaliseServer(s)
			if err == nil && plainRemote(server) {
				fmt.Fprintf(c.stderr, "loggate: warning: %s is plain HTTP; tokens sent to it can be read on the network\n", server)
			}
			return server, err
		}
	}
	return "", errors.New("no server: pass --server URL, set LOGGATE_SERVER, or run `loggate login --server URL`")
}

// session is an API client for the resolved server with a bearer token:
// --token-file, $LOGGATE_TOKEN, or the stored login (refreshed if needed).
func (c *cli) session(ctx context.Context, fs *flag.FlagSet) (*apiClient, error) {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	server, err := c.serverURL(fs, cfg)
	if err != nil {
		return nil, err
	}
	a := &apiClient{c: c, base: server}
	if p := flagString(fs, "token-file"); p != "" {
		tok, err := readTokenFile(p)
		if err != nil {
			return nil, err
		}
		a.token = tok
		return a, nil
	}
	if tok := strings.TrimSpace(c.getenv("LOGGATE_TOKEN")); tok != "" {
		a.token = tok
		return a, nil
	}
	if cfg.Tokens.IDToken == "" || cfg.Server != server {
		return nil, fmt.Errorf("not signed in to %s: run `loggate login --server %s`", server, server)
	}
	if c.clock().Add(30 * time.Second).After(cfg.Tokens.Expiry) {
		if cfg, err = c.refresh(ctx, cfg); err != nil {
			return nil, err
		}
	}
	a.token = cfg.Tokens.IDToken
	if cfg.Tokens.RefreshToken != "" {
		// A long tail or wait can outlive the ID token; the server then
		// answers 401 and the client refreshes once and retries.
		a.renew = func(ctx context.Context) (string, error) {
			cur, err := c.loadConfig()
			if err != nil {
				return "", err
			}
			if cur.Server != server || cur.Tokens.RefreshToken == "" {
				return "", errors.New("the stored sign-in changed")
			}
			cur, err = c.refresh(ctx, cur)
			if err != nil {
				return "", err
			}
			return cur.Tokens.IDToken, nil
		}
	}
	return a, nil
}

// readTokenFile reads a token from a file, refusing an empty one.
func readTokenFile(p string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" || strings.ContainsAny(tok, " \n\t") {
		return "", fmt.Errorf("token file %s must hold exactly one token", p)
	}
	return tok, nil
}

// refresh redeems the stored refresh token for a new ID token and saves it.
//
// Several loggate processes share one refresh token, and a provider that
// rotates refresh tokens treats a second use as a replay and revokes the
// whole family. So refreshing is serialised with a lock file, and a process
// that waited for the lock takes the token the other one just saved.
func (c *cli) refresh(ctx context.Context, cfg Config) (Config, error) {
	relogin := fmt.Errorf("your sign-in to %s has expired: run `loggate login --server %s`", cfg.Server, cfg.Server)
	if unlock, err := c.lockConfig(ctx); err == nil {
		defer unlock()
		if cur, err := c.loadConfig(); err == nil && cur.Server == cfg.Server && cur.Tokens.RefreshToken != "" {
			if cur.Tokens.IDToken != cfg.Tokens.IDToken && c.clock().Add(30*time.Second).Before(cur.Tokens.Expiry) {
				return cur, nil // refreshed by another process meanwhile
			}
			cfg.Tokens.RefreshToken = cur.Tokens.RefreshToken
		}
	}
	if cfg.Tokens.RefreshToken == "" || cfg.Tokens.TokenEndpoint == "" {
		return cfg, relogin
	}
	oc := oauth2.Config{ClientID: cfg.ClientID, Scopes: cfg.Scopes,
		Endpoint: oauth2.Endpoint{TokenURL: cfg.Tokens.TokenEndpoint, AuthStyle: oauth2.AuthStyleInParams}}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, c.client())
	tok, err := oc.TokenSource(ctx, &oauth2.Token{RefreshToken: cfg.Tokens.RefreshToken}).Token()
	if err != nil {
		return cfg, relogin
	}
	if err := cfg.Tokens.update(tok); err != nil {
		return cfg, relogin
	}
	if err := c.saveConfig(cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// update takes the ID token (and a rotated refresh token) from a token response.
func (t *Tokens) update(tok *oauth2.Token) error {
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return errors.New("the identity provider returned no ID token (is the openid scope allowed?)")
	}
	claims, err := jwtClaims(id)
	if err != nil {
		return err
	}
	t.IDToken, t.Expiry = id, time.Unix(claims.Exp, 0).UTC()
	if tok.RefreshToken != "" {
		t.RefreshToken = tok.RefreshToken
	}
	return nil
}

// idClaims are the ID token claims the client reads. The client does not
// verify the signature: the server does, on every request.
type idClaims struct {
	Exp   int64  `json:"exp"`
	Nonce string `json:"nonce"`
	Email string `json:"email"`
}

func jwtClaims(tok string) (idClaims, error) {
	var c idClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return c, errors.New("ID token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return c, errors.New("ID token payload is not base64url")
	}
	if err := json.Unmarshal(payload, &c); err != nil || c.Exp == 0 {
		return c, errors.New("ID token payload has no exp claim")
	}
	return c, nil
}

func (c *cli) client() *http.Client {
	if c.httpClient != nil {
		return c.httpClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// lockConfig takes the config's lock file, waiting up to 10s. A lock older
// than 30s is left over from a crashed process and is broken.
func (c *cli) lockConfig(ctx context.Context) (unlock func(), err error) {
	p, err := c.configPath()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, err
	}
	lock := p + ".lock"
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, err := os.Stat(lock); err == nil && time.Since(fi.ModTime()) > 30*time.Second {
			os.Remove(lock)
			continue
		}
		if time.Now().After(deadline) {
			return nil, errors.New("config lock busy")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway"
)

// certReloader serves the certificate in --tls-cert/--tls-key and picks up
// a new one when either file changes on disk (cert-manager and certbot
// rewrite them), checked by stat on every handshake: two syscalls against a
// handshake's public-key operations. A pair that does not load (one file
// rewritten, the other not yet) keeps the previous certificate until the
// next handshake tries again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex // guards the fields below
	cert    *tls.Certificate
	stamp   [2]fileStamp
	lastErr string // logged once per distinct failure
}

// fileStamp identifies a file version well enough to notice a rewrite.
type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// reload loads the pair if a file changed since the last load.
func (r *certReloader) reload() error {
	cs, err := stampOf(r.certFile)
	if err != nil {
		return fmt.Errorf("tls certificate: %w", err)
	}
	ks, err := stampOf(r.keyFile)
	if err != nil {
		return fmt.Errorf("tls key: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && r.stamp == [2]fileStamp{cs, ks} {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if r.cert != nil {
		r.log.Info("tls certificate reloaded", "file", r.certFile, "not_after", cert.Leaf.NotAfter)
	}
	r.cert, r.stamp, r.lastErr = &cert, [2]fileStamp{cs, ks}, ""
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if err := r.reload(); err != nil {
		r.mu.Lock()
		if err.Error() != r.lastErr {
			r.lastErr = err.Error()
			r.log.Warn("tls certificate changed on disk but does not load; serving the previous one", "err", err)
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}

// serverTLS is the HTTPS configuration of serve: the reloading certificate
// and, with certificate sources, a request (not a demand) for a client
// certificate, verified per request by the gateway so that a refused one
// gets a readable JSON answer.
func serverTLS(c *serveConfig, certs *certSourceFiles, log *slog.Logger) (*tls.Config, error) {
	r, err := newCertReloader(c.TLSCert, c.TLSKey, log)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
	if certs != nil {
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg, nil
}

// certSourceFiles serves the mapping of --source-ca-file and
// --source-cert-map-file, reloaded when either file changes on disk (a CA
// bundle rotated by cert-manager, a mapping edited), checked by stat on
// each ingest request. A change that does not load keeps the previous
// mapping and is logged once.
type certSourceFiles struct {
	caFile, mapFile string
	log             *slog.Logger

	mu      sync.Mutex // guards the fields below
	current *gateway.CertSources
	stamp   [2]fileStamp
	lastErr string
}

// Current is gateway.Config.CertSources.
func (f *certSourceFiles) Current() *gateway.CertSources {
	if err := f.reload(); err != nil {
		f.mu.Lock()
		if err.Error() != f.lastErr {
			f.lastErr = err.Error()
			f.log.Warn("source certificate files changed but do not load; keeping the previous mapping", "err", err)
		}
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.current
}

func (f *certSourceFiles) reload() error {
	cs, err := stampOf(f.caFile)
	if err != nil {
		return fmt.Errorf("source CA: %w", err)
	}
	ms, err := stampOf(f.mapFile)
	if err != nil {
		return fmt.Errorf("source certificate map: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.current != nil && f.stamp == [2]fileStamp{cs, ms} {
		return nil
	}
	next, err := readCertSources(f.caFile, f.mapFile)
	if err != nil {
		return err
	}
	if f.current != nil {
		f.log.Info("source certificate mapping reloaded", "sources", len(next.Sources))
	}
	f.current, f.stamp, f.lastErr = next, [2]fileStamp{cs, ms}, ""
	return nil
}

// loadCertSources reads --source-ca-file and --source-cert-map-file once,
// to fail the start on a bad file; nil when certificate sources are off.
func loadCertSources(c *serveConfig, log *slog.Logger) (*certSourceFiles, error) {
	if c.SourceCAFile == "" && c.SourceCertMapFile == "" {
		if c.SourceRequireBoth {
			return nil, exitcode.Usagef("--source-require-both needs --source-ca-file and --source-cert-map-file")
		}
		return nil, nil
	}
	if c.SourceCAFile == "" || c.SourceCertMapFile == "" {
		return nil, exitcode.Usagef("--source-ca-file and --source-cert-map-file go together")
	}
	if c.TLSCert == "" {
		return nil, exitcode.Usagef("--source-ca-file needs --tls-cert: client certificates come with TLS served by loggate")
	}
	f := &certSourceFiles{caFile: c.SourceCAFile, mapFile: c.SourceCertMapFile, log: log}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

func readCertSources(caFile, mapFile string) (*gateway.CertSources, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("source CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("source CA %s: no PEM certificate in it", caFile)
	}
	b, err := os.ReadFile(mapFile)
	if err != nil {
		return nil, fmt.Errorf("source certificate map: %w", err)
	}
	srcs, err := gateway.ParseCertSources(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", mapFile, err)
	}
	return &gateway.CertSources{CAs: pool, Sources: srcs}, nil
}

// certSourcesFunc is the gateway's view of f: nil when certificate
// sources are off.
func certSourcesFunc(f *certSourceFiles) func() *gateway.CertSources {
	if f == nil {
		return nil
	}
	return f.Current
}

package gateway

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// CertSources lets log sources authenticate with a TLS client certificate
// instead of a bearer source token: a certificate chaining to CAs whose
// subject or SAN matches a mapping may write that mapping's streams.
//
// The TLS layer only requests the certificate (tls.RequestClientCert); it
// is verified here, per request, so that a certificate from another CA,
// expired or mapped to nothing gets a 401/403 JSON answer with the reason
// instead of a failed handshake the sender cannot read.
type CertSources struct {
	// CAs are the roots source certificates must chain to (required).
	CAs *x509.CertPool
	// Sources map certificate identities to streams; the first that
	// matches wins.
	Sources []CertSource
}

// CertSource is one mapping. A certificate matches when any listed DNS
// name, URI, email or the subject common name equals one of its own.
type CertSource struct {
	Name       string            `json:"name"`
	DNSNames   []string          `json:"dns,omitempty"`
	URIs       []string          `json:"uri,omitempty"`
	Emails     []string          `json:"email,omitempty"`
	CommonName string            `json:"common_name,omitempty"`
	Streams    []store.StreamRef `json:"streams"`
}

// ParseCertSources reads the mapping file: {"sources": [CertSource...]}.
// Every mapping needs a name, at least one identity and one stream.
func ParseCertSources(b []byte) ([]CertSource, error) {
	var f struct {
		Sources []CertSource `json:"sources"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("certificate source map: %w", err)
	}
	names := map[string]bool{}
	for i, s := range f.Sources {
		switch {
		case s.Name == "":
			return nil, fmt.Errorf("certificate source map: sources[%d] has no name", i)
		case names[s.Name]:
			return nil, fmt.Errorf("certificate source map: name %q used twice", s.Name)
		case len(s.DNSNames)+len(s.URIs)+len(s.Emails) == 0 && s.CommonName == "":
			return nil, fmt.Errorf("certificate source map: %q names no dns, uri, email or common_name", s.Name)
		case len(s.Streams) == 0:
			return nil, fmt.Errorf("certificate source map: %q lists no streams", s.Name)
		}
		for _, st := range s.Streams {
			if st.Service == "" || st.Env == "" {
				return nil, fmt.Errorf("certificate source map: %q has a stream without service or env", s.Name)
			}
		}
		names[s.Name] = true
	}
	return f.Sources, nil
}

func (c CertSource) matches(cert *x509.Certificate) bool {
	if c.CommonName != "" && cert.Subject.CommonName == c.CommonName {
		return true
	}
	for _, d := range c.DNSNames {
		if slices.Contains(cert.DNSNames, d) {
			return true
		}
	}
	for _, e := range c.Emails {
		if slices.Contains(cert.EmailAddresses, e) {
			return true
		}
	}
	for _, u := range c.URIs {
		for _, cu := range cert.URIs {
			if cu.String() == u {
				return true
			}
		}
	}
	return false
}

// certSource authenticates r by its client certificate. ok is false when
// the request carries none (or certificate sources are off), so that the
// caller asks for a token instead.
func (s *Server) certSource(r *http.Request) (src store.Source, ok bool, err error) {
	cs := s.certSources()
	if cs == nil || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return store.Source{}, false, nil
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	now := s.now()
	_, verr := leaf.Verify(x509.VerifyOptions{Roots: cs.CAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if verr != nil {
		problem := certProblem(verr, leaf, now)
		s.certAuthFailed(r, "client_certificate", leaf, problem)
		return store.Source{}, true, errUnauthorized("client certificate " + certName(leaf) + " not accepted: " + problem)
	}
	for _, m := range cs.Sources {
		if m.matches(leaf) {
			return store.Source{ID: "cert:" + m.Name, Name: m.Name, Streams: m.Streams}, true, nil
		}
	}
	s.certAuthFailed(r, "unmapped_certificate", leaf, "mapped to no stream")
	return store.Source{}, true, errForbidden("client certificate " + certName(leaf) + " is mapped to no stream")
}

// certAuthFailed audits a refused source certificate like a refused token
// (auth.failed, actor kind source, aggregated per address, and per
// certificate once the certificate verified):
// the certificate's name is a claim, not a secret, so it is recorded.
func (s *Server) certAuthFailed(r *http.Request, reason string, leaf *x509.Certificate, problem string) {
	ev := audit.Event{Action: "auth.failed", Outcome: audit.OutcomeFailure, Reason: reason,
		Actor:   audit.Actor{Kind: audit.ActorSource, Name: "(unauthenticated)"},
		Details: map[string]any{"route": r.URL.Path, "detail": "client certificate " + problem, "certificate": certName(leaf)}}
	s.fillFromRequest(r, &ev)
	key := reason + "|" + burstAddr(ev.SourceAddr)
	if reason != "client_certificate" {
		// Verified: the name is the CA's, so it may tell bursts apart. An
		// unverified one is whatever the sender chose, and keyed by it
		// every refusal could start a new burst, written at once.
		key += "|" + certName(leaf)
	}
	s.sourceBursts.add(key, ev)
}

// certName is how a certificate is named in messages: its common name,
// else its first DNS name or URI.
func certName(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return fmt.Sprintf("%q", c.Subject.CommonName)
	case len(c.DNSNames) > 0:
		return fmt.Sprintf("%q", c.DNSNames[0])
	case len(c.URIs) > 0:
		return fmt.Sprintf("%q", c.URIs[0].String())
	}
	return "(unnamed)"
}

// certProblem says why verification failed, in words a sender can act on.
func certProblem(err error, c *x509.Certificate, now time.Time) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired {
		if now.After(c.NotAfter) {
			return "expired at " + c.NotAfter.UTC().Format(time.RFC3339)
		}
		return "not valid before " + c.NotBefore.UTC().Format(time.RFC3339)
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "not issued by a CA trusted for sources"
	}
	if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
		return "not valid for client authentication"
	}
	return "verification failed"
}

// certSources is the current mapping, or nil when certificates are off.
func (s *Server) certSources() *CertSources {
	if s.cfg.CertSources == nil {
		return nil
	}
	return s.cfg.CertSources()
}

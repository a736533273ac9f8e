package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

func TestParseCertSources(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"valid", `{"sources":[{"name":"a","dns":["a.svc"],"streams":[{"service":"api","env":"prod"}]}]}`, ""},
		{"no name", `{"sources":[{"dns":["a.svc"],"streams":[{"service":"api","env":"prod"}]}]}`, "has no name"},
		{"twice", `{"sources":[{"name":"a","dns":["a"],"streams":[{"service":"s","env":"e"}]},{"name":"a","dns":["b"],"streams":[{"service":"s","env":"e"}]}]}`, "used twice"},
		{"no identity", `{"sources":[{"name":"a","streams":[{"service":"api","env":"prod"}]}]}`, "names no dns"},
		{"no streams", `{"sources":[{"name":"a","uri":["spiffe://x/y"]}]}`, "lists no streams"},
		{"half stream", `{"sources":[{"name":"a","email":["a@x"],"streams":[{"service":"api"}]}]}`, "without service or env"},
		{"unknown key", `{"sources":[{"name":"a","sans":["x"]}]}`, "unknown field"},
		{"not json", `sources: []`, "invalid character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCertSources([]byte(tc.in))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ParseCertSources = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func FuzzParseCertSources(f *testing.F) {
	f.Add([]byte(`{"sources":[{"name":"a","dns":["a.svc"],"streams":[{"service":"api","env":"prod"}]}]}`))
	f.Add([]byte(`{"sources":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		srcs, err := ParseCertSources(b)
		if err != nil {
			return
		}
		for _, s := range srcs {
			if s.Name == "" || len(s.Streams) == 0 {
				t.Fatalf("accepted an incomplete mapping %+v", s)
			}
		}
	})
}

// testCertPair is a CA and a client certificate it issued for cn, valid
// from notBefore to notAfter.
func testCertPair(t *testing.T, cn string, notBefore, notAfter time.Time) (*x509.Certificate, *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore, NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	return ca, leaf
}

// TestCertSourceRefusalsAudited: refused client certificates are
// auth.failed events with actor kind source, naming the certificate and
// the problem; a mapped one is a source with the mapping's streams.
func TestCertSourceRefusalsAudited(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	ca, good := testCertPair(t, "shipper", now.Add(-time.Hour), now.Add(time.Hour))
	_, foreign := testCertPair(t, "shipper", now.Add(-time.Hour), now.Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cs := &CertSources{CAs: pool, Sources: []CertSource{{Name: "shipper", CommonName: "shipper",
		Streams: []store.StreamRef{{Service: "checkout", Env: "staging"}}}}}
	h.srv.cfg.CertSources = func() *CertSources { return cs }

	request := func(leaf *x509.Certificate) *http.Request {
		r := httptest.NewRequest("POST", "/api/v1/ingest?service=checkout&env=staging", nil)
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		return r
	}
	src, err := h.srv.source(request(good))
	if err != nil || src.Name != "shipper" || !src.Allows("checkout", "staging") || src.Allows("checkout", "prod") {
		t.Fatalf("mapped certificate: %+v, %v", src, err)
	}
	var ae *apiError
	if _, err := h.srv.source(request(foreign)); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("foreign certificate: %v, want 401", err)
	}
	cs.Sources[0].CommonName = "someone-else"
	if _, err := h.srv.source(request(good)); !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("unmapped certificate: %v, want 403", err)
	}
	h.srv.sourceBursts.flush(false)
	reasons := map[string]audit.Event{}
	for _, ev := range h.events(audit.Query{Action: "auth.failed"}) {
		if ev.Actor.Kind == audit.ActorSource {
			reasons[ev.Reason] = ev
		}
	}
	for _, want := range []string{"client_certificate", "unmapped_certificate"} {
		ev, ok := reasons[want]
		if !ok {
			t.Errorf("no auth.failed with reason %s (got %v)", want, reasons)
			continue
		}
		if ev.Details["certificate"] != `"shipper"` {
			t.Errorf("%s names certificate %v, want \"shipper\"", want, ev.Details["certificate"])
		}
	}
}

// TestCertAndTokenSourceRefusalsAudited: with SourceAuthBoth, a certificate
// without a token and a token without a certificate are refused and each
// is an auth.failed event with actor kind source; the pair writes only the
// streams both allow.
func TestCertAndTokenSourceRefusalsAudited(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	ca, good := testCertPair(t, "shipper", now.Add(-time.Hour), now.Add(time.Hour))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cs := &CertSources{CAs: pool, Sources: []CertSource{{Name: "shipper", CommonName: "shipper",
		Streams: []store.StreamRef{{Service: "checkout", Env: "*"}, {Service: "billing", Env: "prod"}}}}}
	h.srv.cfg.CertSources = func() *CertSources { return cs }
	h.srv.cfg.SourceAuthBoth = true
	const token = "lgs_both_test_token_0000000000000000000000000000"
	if _, err := h.srv.CreateSource(context.Background(), systemActor, "both", token,
		[]store.StreamRef{{Service: "*", Env: "staging"}, {Service: "billing", Env: "*"}}); err != nil {
		t.Fatal(err)
	}
	request := func(leaf *x509.Certificate, token string) *http.Request {
		r := httptest.NewRequest("POST", "/api/v1/ingest?service=checkout&env=staging", nil)
		if leaf != nil {
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return r
	}
	src, err := h.srv.source(request(good, token))
	if err != nil || src.Name != "both" {
		t.Fatalf("certificate and token: %+v, %v", src, err)
	}
	for _, st := range []struct {
		service, env string
		want         bool
	}{{"checkout", "staging", true}, {"billing", "prod", true}, {"checkout", "prod", false},
		{"billing", "staging", false}, {"search", "staging", false}} {
		if got := src.Allows(st.service, st.env); got != st.want {
			t.Errorf("pair allows %s/%s = %v, want %v (streams %v)", st.service, st.env, got, st.want, src.Streams)
		}
	}
	var ae *apiError
	for name, r := range map[string]*http.Request{"certificate alone": request(good, ""), "token alone": request(nil, token)} {
		if _, err := h.srv.source(r); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
			t.Errorf("%s: %v, want 401", name, err)
		}
	}
	h.srv.cfg.CertSources = func() *CertSources { return nil }
	if _, err := h.srv.source(request(good, token)); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("without certificate sources configured: %v, want 401 (fail closed)", err)
	}
	h.srv.sourceBursts.flush(false)
	reasons := map[string]bool{}
	for _, ev := range h.events(audit.Query{Action: "auth.failed"}) {
		if ev.Actor.Kind == audit.ActorSource {
			reasons[ev.Reason] = true
			if strings.Contains(fmt.Sprint(ev.Details), token) {
				t.Errorf("%s event holds the token: %v", ev.Reason, ev.Details)
			}
		}
	}
	for _, want := range []string{sourceReasonNoCredentials, sourceReasonNoCertificate} {
		if !reasons[want] {
			t.Errorf("no auth.failed with reason %s (got %v)", want, reasons)
		}
	}
}

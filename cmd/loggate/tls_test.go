package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made at run time.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate; tmpl gives names, validity and usage.
func (ca *testCA) issue(t *testing.T, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.SerialNumber = serial
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// writePair writes c as PEM certificate and key files.
func writePair(t *testing.T, c tls.Certificate, certFile, keyFile string) {
	t.Helper()
	kder, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func serverCert(ca *testCA, t *testing.T, cn string) tls.Certificate {
	return ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
}

func clientCert(ca *testCA, t *testing.T, cn string, notBefore, notAfter time.Time) tls.Certificate {
	return ca.issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, DNSNames: []string{cn + ".svc"},
		NotBefore: notBefore, NotAfter: notAfter,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature})
}

// tlsGateway starts serve --dev over HTTPS with a server certificate from
// serverCA and, when mapFile is set, certificate sources from sourceCA.
func tlsGateway(t *testing.T, serverCA, sourceCA *testCA, mapJSON string, extra ...string) (*gatewayT, string, string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, serverCert(serverCA, t, "first"), certFile, keyFile)
	args := []string{"--dev", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--dev-demo-logs=false",
		"--log-level", "error", "--tls-cert", certFile, "--tls-key", keyFile, "--dev-source-token", "lgs_tls_test_token"}
	if mapJSON != "" {
		caFile, mapFile := filepath.Join(dir, "sources-ca.pem"), filepath.Join(dir, "sources.json")
		os.WriteFile(caFile, sourceCA.pem, 0o600)
		os.WriteFile(mapFile, []byte(mapJSON), 0o600)
		args = append(args, "--source-ca-file", caFile, "--source-cert-map-file", mapFile)
	}
	return startServe(t, append(args, extra...)), certFile, keyFile
}

func httpsClient(roots *testCA, cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(roots.cert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

// TestCertificateSources: a source with a client certificate from the
// sources CA writes the streams it is mapped to; any other certificate
// gets a 401/403 JSON answer saying why.
func TestCertificateSources(t *testing.T) {
	serverCA, sourceCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "sources CA"), newTestCA(t, "other CA")
	g, certFile, _ := tlsGateway(t, serverCA, sourceCA, `{"sources": [
		{"name": "fluent-bit checkout", "dns": ["fluentbit.svc"], "streams": [{"service": "checkout", "env": "staging"}]},
		{"name": "by common name", "common_name": "shipper", "streams": [{"service": "checkout", "env": "prod"}]}]}`)
	now := time.Now()
	valid := clientCert(sourceCA, t, "fluentbit", time.Time{}, time.Time{})
	byCN := clientCert(sourceCA, t, "shipper", time.Time{}, time.Time{})
	foreign := clientCert(otherCA, t, "fluentbit", time.Time{}, time.Time{})
	expired := clientCert(sourceCA, t, "fluentbit", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	unmapped := clientCert(sourceCA, t, "stranger", time.Time{}, time.Time{})
	serverOnly := serverCert(sourceCA, t, "fluentbit")
	serverOnly.Leaf.DNSNames = nil

	tests := []certCase{
		{"mapped certificate", &valid, "", "staging", 200, ""},
		{"mapped by common name", &byCN, "", "prod", 200, ""},
		{"another CA", &foreign, "", "staging", 401, "not issued by a CA trusted for sources"},
		{"expired", &expired, "", "staging", 401, "expired at"},
		{"server-only usage", &serverOnly, "", "staging", 401, "not valid for client authentication"},
		{"mapped to no stream", &unmapped, "", "staging", 403, `"stranger" is mapped to no stream`},
		{"wrong stream", &valid, "", "prod", 403, "may not write stream checkout/prod"},
		{"neither certificate nor token", nil, "", "staging", 401, "or client certificate required"},
		{"token still works", nil, "lgs_tls_test_token", "staging", 200, ""},
		{"a token decides over a certificate", &unmapped, "lgs_tls_test_token", "staging", 200, ""},
	}
	runCertCases(t, g.url, serverCA, tests)

	// The mapping file is re-read when it changes: "stranger" gets a stream,
	// and a broken edit keeps the last good mapping.
	ingestAs := func(cert *tls.Certificate) int {
		t.Helper()
		req, _ := http.NewRequest("POST", g.url+"/api/v1/ingest?service=checkout&env=staging", strings.NewReader(`{"message":"x"}`+"\n"))
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := httpsClient(serverCA, cert).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	mapFile := filepath.Join(filepath.Dir(certFile), "sources.json")
	os.WriteFile(mapFile, []byte(`{"sources": [{"name": "stranger", "common_name": "stranger", "streams": [{"service": "checkout", "env": "staging"}]}]}`), 0o600)
	if code := ingestAs(&unmapped); code != 200 {
		t.Errorf("after mapping stranger: %d, want 200", code)
	}
	if code := ingestAs(&valid); code != 403 {
		t.Errorf("fluentbit after its mapping was removed: %d, want 403", code)
	}
	os.WriteFile(mapFile, []byte(`{"sources": [`), 0o600)
	if code := ingestAs(&unmapped); code != 200 {
		t.Errorf("after a broken edit: %d, want 200 (the last good mapping)", code)
	}
}

// certCase is one ingest over HTTPS: with cert and/or token, to
// checkout/<env>, and the answer wanted.
type certCase struct {
	name     string
	cert     *tls.Certificate
	token    string
	env      string
	wantCode int
	wantMsg  string
}

func runCertCases(t *testing.T, base string, serverCA *testCA, tests []certCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", base+"/api/v1/ingest?service=checkout&env="+tc.env,
				strings.NewReader(`{"message":"hello over mTLS"}`+"\n"))
			req.Header.Set("Content-Type", "application/x-ndjson")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := httpsClient(serverCA, tc.cert).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error, Code string }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %d (%+v), want %d", resp.StatusCode, body, tc.wantCode)
			}
			if tc.wantMsg != "" && !strings.Contains(body.Error, tc.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", body.Error, tc.wantMsg)
			}
			if ct := resp.Header.Get("Content-Type"); tc.wantCode != 200 && !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q, want JSON", ct)
			}
		})
	}

}

// TestCertificateAndTokenSources: with --source-require-both a source
// needs its token and a mapped client certificate: either alone is 401
// saying what is missing, and it writes only the streams both allow.
func TestCertificateAndTokenSources(t *testing.T) {
	serverCA, sourceCA, otherCA := newTestCA(t, "server CA"), newTestCA(t, "sources CA"), newTestCA(t, "other CA")
	g, _, _ := tlsGateway(t, serverCA, sourceCA, `{"sources": [
		{"name": "fluent-bit checkout", "dns": ["fluentbit.svc"], "streams": [{"service": "checkout", "env": "staging"}]}]}`,
		"--source-require-both", "--source-listen", "127.0.0.1:0")
	valid := clientCert(sourceCA, t, "fluentbit", time.Time{}, time.Time{})
	foreign := clientCert(otherCA, t, "fluentbit", time.Time{}, time.Time{})
	unmapped := clientCert(sourceCA, t, "stranger", time.Time{}, time.Time{})
	const token = "lgs_tls_test_token" // allows checkout/staging and checkout/prod
	if !strings.HasPrefix(g.r.SourceURL, "https://") {
		t.Fatalf("source listener URL %q, want https", g.r.SourceURL)
	}
	// On the source listener, with the same TLS and certificate rules.
	runCertCases(t, g.r.SourceURL, serverCA, []certCase{
		{"certificate and token", &valid, token, "staging", 200, ""},
		{"certificate alone", &valid, "", "staging", 401, "source token (Authorization: Bearer <token>) required"},
		{"token alone", nil, token, "staging", 401, "client certificate required"},
		{"neither", nil, "", "staging", 401, "client certificate required"},
		{"certificate and a wrong token", &valid, "lgs_not_a_token", "staging", 401, "invalid source token"},
		{"token and a certificate of another CA", &foreign, token, "staging", 401, "not issued by a CA trusted for sources"},
		{"token and an unmapped certificate", &unmapped, token, "staging", 403, "mapped to no stream"},
		{"a stream the token allows and the certificate does not", &valid, token, "prod", 403, "may not write stream checkout/prod"},
	})
	// The main listener no longer takes ingest, whatever the credentials.
	runCertCases(t, g.url, serverCA, []certCase{{"main listener", &valid, token, "staging", 404, "no such endpoint"}})
}

// TestTLSCertificateReload: rewriting the certificate files on disk
// changes the certificate the next connection sees, without a restart;
// HTTPS answers carry HSTS.
func TestTLSCertificateReload(t *testing.T) {
	ca := newTestCA(t, "server CA")
	g, certFile, keyFile := tlsGateway(t, ca, nil, "")
	seen := func() (string, *http.Response) {
		t.Helper()
		resp, err := httpsClient(ca, nil).Get(g.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName, resp
	}
	cn, resp := seen()
	if cn != "first" {
		t.Fatalf("served certificate %q, want first", cn)
	}
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.Contains(hsts, "max-age=") {
		t.Errorf("Strict-Transport-Security = %q over HTTPS, want max-age", hsts)
	}
	writePair(t, serverCert(ca, t, "second"), certFile, keyFile)
	if cn, _ := seen(); cn != "second" {
		t.Fatalf("after rewriting the files the server showed %q, want second", cn)
	}
	// A half-written pair (new certificate, old key) keeps the last good one.
	third := serverCert(ca, t, "third")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: third.Certificate[0]}), 0o600)
	if cn, _ := seen(); cn != "second" {
		t.Fatalf("with a mismatched pair the server showed %q, want the previous certificate", cn)
	}
}

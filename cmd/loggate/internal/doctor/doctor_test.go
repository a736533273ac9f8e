package doctor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/auth/devidp"
	"github.com/loggate/loggate/gateway/cluster/redistest"
	"github.com/loggate/loggate/policies"
)

const redirect = "https://loggate.example.com/auth/callback"

// devIdP serves the development provider on a real loopback listener,
// with one client that registered redirect.
func devIdP(t *testing.T) string {
	t.Helper()
	var p *devidp.Provider
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	var err error
	p, err = devidp.New(devidp.Config{Issuer: ts.URL + "/oidc", Users: devidp.DemoUsers(),
		Clients: []devidp.Client{{ID: "loggate", RedirectURIs: []string{redirect}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return ts.URL + "/oidc"
}

// byCheck indexes results by check name (the last result of each name).
func byCheck(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

func TestCheckIdP(t *testing.T) {
	issuer := devIdP(t)
	tests := []struct {
		name   string
		cfg    IdPConfig
		want   map[string]Status
		detail string // substring of the first non-OK result's detail
	}{
		{"all good", IdPConfig{Issuer: issuer, ClientID: "loggate", RedirectURL: redirect},
			map[string]Status{"idp discovery": OK, "idp keys": OK, "clock skew": OK, "redirect url": OK}, ""},
		{"issuer with a trailing slash", IdPConfig{Issuer: issuer + "/", ClientID: "loggate", RedirectURL: redirect},
			map[string]Status{"idp discovery": Fail}, "tokens would not verify"},
		{"unregistered redirect", IdPConfig{Issuer: issuer, ClientID: "loggate", RedirectURL: "https://other.example/auth/callback"},
			map[string]Status{"redirect url": Fail}, "refused an authorization request"},
		{"unknown client", IdPConfig{Issuer: issuer, ClientID: "nobody", RedirectURL: redirect},
			map[string]Status{"redirect url": Fail}, ""},
		{"clock a minute off", IdPConfig{Issuer: issuer, ClientID: "loggate", RedirectURL: redirect,
			Now: func() time.Time { return time.Now().Add(time.Minute) }},
			map[string]Status{"clock skew": Warn}, "differ by "},
		{"clock ten minutes off", IdPConfig{Issuer: issuer, ClientID: "loggate", RedirectURL: redirect,
			Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }},
			map[string]Status{"clock skew": Fail}, "tokens would be refused"},
		{"unreachable", IdPConfig{Issuer: "http://127.0.0.1:1/oidc", ClientID: "loggate", RedirectURL: redirect},
			map[string]Status{"idp discovery": Fail}, "connection refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := CheckIdP(context.Background(), tc.cfg)
			got := byCheck(rs)
			for check, want := range tc.want {
				if got[check].Status != want {
					t.Errorf("%s = %v (%s), want %v", check, got[check].Status, got[check].Detail, want)
				}
			}
			for _, r := range rs {
				if r.Status != OK {
					if r.Fix == "" {
						t.Errorf("%s is %v without a fix", r.Check, r.Status)
					}
					if tc.detail != "" && !strings.Contains(r.Detail, tc.detail) {
						t.Errorf("detail %q, want %q", r.Detail, tc.detail)
					}
					break
				}
			}
		})
	}
}

func TestCheckRedis(t *testing.T) {
	durable := redistest.Start(t)
	weakSrv := redistest.Start(t, "--appendfsync", "everysec")
	ctx := context.Background()
	if rs := CheckRedis(ctx, durable.Client(), false); Worst(rs) != OK {
		t.Errorf("appendfsync always: %v, want ok", rs)
	}
	rs := CheckRedis(ctx, weakSrv.Client(), false)
	if r := byCheck(rs)["redis persistence"]; r.Status != Fail || !strings.Contains(r.Detail, "appendfsync=everysec") ||
		!strings.Contains(r.Fix, "appendfsync always") {
		t.Errorf("appendfsync everysec: %+v, want a failure naming it", r)
	}
	if r := byCheck(CheckRedis(ctx, weakSrv.Client(), true))["redis persistence"]; r.Status != Warn {
		t.Errorf("accepted weak durability: %+v, want a warning", r)
	}
	durable.Stop()
	if r := CheckRedis(ctx, durable.Client(), false); Worst(r) != Fail {
		t.Errorf("stopped Redis: %v, want a failure", r)
	}
}

func TestCheckDisk(t *testing.T) {
	dir := t.TempDir()
	if r := CheckDisk(dir, nil); r.Status == Fail || !strings.Contains(r.Detail, "free") {
		t.Errorf("the real temp dir: %+v", r)
	}
	for _, tc := range []struct {
		free, total uint64
		want        Status
	}{
		{50 << 30, 100 << 30, OK},
		{2 << 30, 100 << 30, Warn}, // under 5 %
		{500 << 20, 1 << 30, Warn},
		{10 << 20, 100 << 30, Fail},
	} {
		r := CheckDisk(dir, func(string) (uint64, uint64, error) { return tc.free, tc.total, nil })
		if r.Status != tc.want {
			t.Errorf("free %d of %d: %v (%s), want %v", tc.free, tc.total, r.Status, r.Detail, tc.want)
		}
	}
}

func TestCheckPolicy(t *testing.T) {
	ctx := context.Background()
	if r := CheckPolicy(ctx, "", policies.FS); r.Status != OK {
		t.Fatalf("embedded policies: %+v", r)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package loggate.access\n\nallow if {\n"), 0o600)
	if r := CheckPolicy(ctx, dir, nil); r.Status != Fail || !strings.Contains(r.Fix, "loggate policy test") {
		t.Fatalf("broken policy: %+v, want a failure", r)
	}
}

func TestCheckTLSCert(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	for _, tc := range []struct {
		name      string
		notBefore time.Time
		notAfter  time.Time
		want      Status
		detail    string
	}{
		{"valid for a year", now.Add(-time.Hour), now.Add(365 * 24 * time.Hour), OK, "valid until"},
		{"expires in a week", now.Add(-time.Hour), now.Add(7 * 24 * time.Hour), Warn, "expires in"},
		{"expired", now.Add(-48 * time.Hour), now.Add(-time.Hour), Fail, "expired at"},
		{"not yet valid", now.Add(time.Hour), now.Add(48 * time.Hour), Fail, "not valid before"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loggate"},
				NotBefore: tc.notBefore, NotAfter: tc.notAfter}
			der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
			kder, _ := x509.MarshalPKCS8PrivateKey(key)
			cf, kf := filepath.Join(dir, tc.name+".crt"), filepath.Join(dir, tc.name+".key")
			os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
			os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
			r := CheckTLSCert(cf, kf, now)
			if r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("got %v %q, want %v with %q", r.Status, r.Detail, tc.want, tc.detail)
			}
		})
	}
	if r := CheckTLSCert(filepath.Join(dir, "none.crt"), filepath.Join(dir, "none.key"), now); r.Status != Fail {
		t.Errorf("missing files: %+v", r)
	}
}

func TestPrint(t *testing.T) {
	var b strings.Builder
	Print(&b, []Result{ok("a", "fine"), fail("b", "do this", "broken")})
	want := "ok    a: fine\nfail  b: broken\n      fix: do this\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestCheckCABundle(t *testing.T) {
	now := time.Now()
	dir := t.TempDir()
	ca := func(notAfter time.Time) []byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sources CA"},
			NotBefore: now.Add(-48 * time.Hour), NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	for _, tc := range []struct {
		name   string
		bundle []byte
		want   Status
	}{
		{"a year left", ca(now.Add(365 * 24 * time.Hour)), OK},
		{"one of two expires in a week", append(ca(now.Add(365*24*time.Hour)), ca(now.Add(7*24*time.Hour))...), Warn},
		{"expired", ca(now.Add(-time.Hour)), Fail},
		{"no certificate", []byte("not pem\n"), Fail},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pem")
		os.WriteFile(p, tc.bundle, 0o600)
		if r := CheckCABundle(p, now); r.Status != tc.want || (r.Status != OK && r.Fix == "") {
			t.Errorf("%s: %v %q, want %v with a fix", tc.name, r.Status, r.Detail, tc.want)
		}
	}
}

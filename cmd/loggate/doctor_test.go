//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loggate/loggate/auth/devidp"
	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// doctorExit runs `loggate doctor args...` and returns its exit code and
// output.
func doctorExit(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"doctor"}, args...), func(string) string { return "" }, nil, &out, &errb)
	code := exitcode.OK
	var ce *exitcode.Error
	if errors.As(err, &ce) {
		code = ce.Code
	} else if err != nil {
		t.Fatalf("doctor: %v\n%s", err, errb.String())
	}
	return code, out.String()
}

// TestDoctorExitCodes is the contract: 0 all ok, 1 a failure, 2 warnings
// only; against a real provider (the development one, over HTTP).
func TestDoctorExitCodes(t *testing.T) {
	const public = "https://loggate.example.com"
	var p *devidp.Provider
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.ServeHTTP(w, r) }))
	defer ts.Close()
	var err error
	p, err = devidp.New(devidp.Config{Issuer: ts.URL, Users: devidp.DemoUsers(),
		Clients: []devidp.Client{{ID: "loggate", RedirectURIs: []string{public + "/auth/callback"}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	data := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	prod := []string{"--issuer", ts.URL, "--client-id", "loggate", "--public-url", public, "--data", data}

	code, out := doctorExit(t, prod...)
	if code != 0 || strings.Contains(out, "warn") || strings.Contains(out, "fail") {
		t.Fatalf("healthy configuration: exit %d\n%s", code, out)
	}
	for _, want := range []string{"ok    permissions: data directory", "ok    idp discovery", "ok    idp keys",
		"ok    redirect url", "ok    clock skew", "ok    disk space", "ok    policy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out = doctorExit(t, "--dev", "--data", data)
	if code != 2 || !strings.Contains(out, "warn  idp: --dev") {
		t.Errorf("--dev: exit %d, want 2 (warnings only)\n%s", code, out)
	}

	os.Chmod(data, 0o755) // empty: serve would make it 0700, so only a warning
	if code, out = doctorExit(t, prod...); code != 2 || !strings.Contains(out, "serve will make it 0700") {
		t.Errorf("empty open data directory: exit %d, want 2\n%s", code, out)
	}
	os.WriteFile(filepath.Join(data, "state.db"), nil, 0o600)
	code, out = doctorExit(t, prod...)
	if code != 1 || !strings.Contains(out, "fix: chmod 700 "+data) {
		t.Errorf("open data directory: exit %d, want 1 with the chmod\n%s", code, out)
	}
	os.Chmod(data, 0o700)

	code, out = doctorExit(t, "--issuer", ts.URL, "--client-id", "loggate", "--public-url", "https://elsewhere.example", "--data", data)
	if code != 1 || !strings.Contains(out, "fail  redirect url") {
		t.Errorf("unregistered redirect: exit %d, want 1\n%s", code, out)
	}
}

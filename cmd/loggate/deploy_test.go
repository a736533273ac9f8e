//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loggate/loggate/gateway/logs/seal"
)

const (
	deployUnit   = "deploy/loggate.service"
	deployConfig = "deploy/config.example.json"
	credsPrefix  = "/run/credentials/loggate.service/"
)

// installExample writes the example config with its credential and data
// paths moved under dir, and real files for every credential it names
// (the kinds serve expects: secret text, session keys, Ed25519 key,
// backlog keys, a TLS pair). It returns the config path and the
// credentials directory.
func installExample(t *testing.T, dir string) (string, string) {
	t.Helper()
	b, err := os.ReadFile(deployConfig)
	if err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "credentials")
	os.MkdirAll(creds, 0o700)
	text := strings.ReplaceAll(string(b), credsPrefix, creds+"/")
	text = strings.ReplaceAll(text, `"/var/lib/loggate"`, `"`+filepath.Join(dir, "data")+`"`)
	var session [32]byte
	rand.Read(session[:])
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	files := map[string][]byte{
		"client-secret":     []byte("example-client-secret\n"),
		"session.keys":      []byte(hex.EncodeToString(session[:]) + "\n"),
		"audit-signing.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		"backlog.keys":      seal.Generate(),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(creds, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca := newTestCA(t, "example CA")
	writePair(t, serverCert(ca, t, "loggate.example.com"), filepath.Join(creds, "tls.crt"), filepath.Join(creds, "tls.key"))
	files = map[string][]byte{"sources-ca.pem": ca.pem, "sources.json": []byte(`{"sources": [{"name": "fluent-bit",
		"dns": ["fluentbit.logging.svc"], "streams": [{"service": "checkout", "env": "prod"}]}]}`)}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(creds, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "config.json")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, creds
}

// TestDeployExampleConfig: the example replica config passes
// `serve --check-config` (every setting known and valid, every file it
// names loads), touching neither --data nor the network.
func TestDeployExampleConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, creds := installExample(t, dir)
	getenv := func(k string) string {
		if k == "CREDENTIALS_DIRECTORY" {
			return creds
		}
		return ""
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"serve", "--check-config", "--config", cfg}, getenv, nil, &out, &errb)
	if err != nil {
		t.Fatalf("serve --check-config: %v\n%s", err, errb.String())
	}
	if got := out.String(); !strings.HasPrefix(got, "configuration ok") || !strings.Contains(got, "Redis") || !strings.Contains(got, "sealed") ||
		!strings.Contains(got, "sources on 0.0.0.0:8444") {
		t.Errorf("output %q, want configuration ok with Redis, a sealed backlog and the source listener", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("--check-config created the data directory")
	}

	// A broken copy is refused with the reason.
	b, _ := os.ReadFile(cfg)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, bytes.Replace(b, []byte(`"log-retention": "prod=50000//24h`), []byte(`"log-retention": "prod=many//24h`), 1), 0o600)
	err = run(context.Background(), []string{"serve", "--check-config", "--config", bad}, getenv, nil, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "--log-retention") {
		t.Errorf("broken retention: %v, want a --log-retention error", err)
	}
}

// TestDeployUnit: the unit is hardened, loads every credential the
// example config names, and passes `systemd-analyze verify` without a
// complaint about it.
func TestDeployUnit(t *testing.T) {
	b, err := os.ReadFile(deployUnit)
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "StateDirectory=loggate",
		"StateDirectoryMode=0700", "UMask=0077", "ProtectHome=yes", "PrivateTmp=yes", "CapabilityBoundingSet=\n",
		"SystemCallFilter=@system-service", "ExecStartPre=/usr/local/bin/loggate serve --check-config"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", strings.TrimSpace(want))
		}
	}
	cfg, _ := os.ReadFile(deployConfig)
	for _, m := range regexp.MustCompile(regexp.QuoteMeta(credsPrefix)+`([^"]+)`).FindAllStringSubmatch(string(cfg), -1) {
		if !strings.Contains(unit, "LoadCredential="+m[1]+":") {
			t.Errorf("the config reads credential %s that the unit does not load", m[1])
		}
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: the unit's syntax is not verified here (the checks above ran)")
	}
	// verify wants the binary to exist: point it at this test binary.
	exe, _ := os.Executable()
	path := filepath.Join(t.TempDir(), "loggate.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/loggate", exe)), 0o600)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	var complaints []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "loggate.service") {
			complaints = append(complaints, line)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, strings.Join(complaints, "\n"))
	}
}

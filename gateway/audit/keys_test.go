package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestGeneratedKeyFiles(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	for _, tt := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(dir, keysDir), 0o700 | os.ModeDir},
		{filepath.Join(dir, keysDir, privateKeyFile), 0o600},
		{filepath.Join(dir, dbFile), 0o600},
	} {
		fi, err := os.Stat(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != tt.mode {
			t.Errorf("%s: mode %v, want %v", tt.path, fi.Mode(), tt.mode)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, keysDir, verifierFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(pub)); got != s.VerifierKey() {
		t.Errorf("audit.pub = %q, want %q", got, s.VerifierKey())
	}
}

func TestSigningKeyFile(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	skey, _, err := note.GenerateKey(rand.Reader, "some-name")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		content []byte
		wantErr bool
	}{
		{"pkcs8 pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), false},
		{"note signer key", []byte(skey + "\n"), false},
		{"garbage", []byte("not a key"), true},
		{"wrong pem type", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(t.TempDir(), "key")
			if err := os.WriteFile(keyFile, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := Open(context.Background(), Config{Dir: dir, SigningKeyFile: keyFile, Origin: "example.org/audit"})
			if tt.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded, want error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			appendN(t, s, 2)
			if tt.name == "pkcs8 pem" && !s.PublicKey().Equal(priv.Public()) {
				t.Errorf("store uses another key than the configured one")
			}
			if _, err := os.Stat(filepath.Join(dir, keysDir, privateKeyFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a key was generated although SigningKeyFile is set (stat: %v)", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if rep, err := Verify(context.Background(), dir, nil); err != nil {
				t.Errorf("Verify: %v %v", err, kinds(rep))
			}
		})
	}
}

// Rotating the key keeps old checkpoints verifiable: audit.pub lists every
// key the store has used.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	s.Close()

	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "new.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	s, err = Open(ctx, Config{Dir: dir, SigningKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	s.Close()
	keys, err := readVerifierKeys(filepath.Join(dir, keysDir, verifierFile))
	if err != nil || len(keys) != 2 {
		t.Fatalf("verifier keys = %v, %v; want 2", keys, err)
	}
	if rep, err := Verify(ctx, dir, nil); err != nil {
		t.Errorf("Verify after rotation: %v %v", err, kinds(rep))
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"origin with space", Config{Dir: t.TempDir(), Origin: "a b"}},
		{"origin with plus", Config{Dir: t.TempDir(), Origin: "a+b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(context.Background(), tt.cfg); !errors.Is(err, ErrInvalid) {
				if s != nil {
					s.Close()
				}
				t.Errorf("Open error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOpenRejectsOriginChange(t *testing.T) {
	dir := storeWith(t, 1)
	if s, err := Open(context.Background(), Config{Dir: dir, Origin: "other.example/audit"}); !errors.Is(err, ErrInvalid) {
		if s != nil {
			s.Close()
		}
		t.Errorf("Open with another origin: %v, want ErrInvalid", err)
	}
}

func TestVerifyWhileOpen(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	appendN(t, s, 20)
	rep, err := Verify(context.Background(), dir, nil)
	if err != nil {
		t.Fatalf("Verify of a live store: %v %v", err, kinds(rep))
	}
	if rep.Events != 20 {
		t.Errorf("events = %d, want 20", rep.Events)
	}
}

package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Key files under Config.Dir.
const (
	keysDir        = "keys"
	privateKeyFile = "audit.key" // PKCS#8 PEM, mode 0600
	verifierFile   = "audit.pub" // note verifier keys, one per line, every key ever used
)

// Signer signs checkpoints of one log (origin) with one Ed25519 key. It is
// the one checkpoint signer: the SQLite store and the Redis trail
// (gateway/cluster) both sign through it, so their checkpoints are the same
// C2SP tlog-checkpoint notes and every check of them is written once.
type Signer struct {
	priv     ed25519.PrivateKey
	origin   string
	signer   note.Signer
	verifier string // note verifier key "<origin>+<hash>+<base64>"
}

// VerifierKey returns the note verifier key ("<origin>+<hash>+<base64>")
// that checks the signer's checkpoints.
func (k *Signer) VerifierKey() string { return k.verifier }

// Origin returns the log's origin line, also the note key name.
func (k *Signer) Origin() string { return k.origin }

// Sign signs a checkpoint for the tree of the given size and root, stamped t.
func (k *Signer) Sign(size int64, root tlog.Hash, t time.Time) (Checkpoint, error) {
	return signCheckpoint(k, k.origin, size, root, t)
}

// LoadPrivateKey reads an Ed25519 checkpoint signing key file: PKCS#8 PEM
// (as `openssl genpkey -algorithm ed25519` writes) or a note signer key
// ("PRIVATE+KEY+name+hash+base64").
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	priv, err := parsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", path, err)
	}
	return priv, nil
}

// loadSigningKey reads keyFile, or Dir/keys/audit.key, generating the latter
// with mode 0600 when absent. The verifier key is added to Dir/keys/audit.pub
// so that Verify(dir) can check checkpoints signed by any key ever used.
func loadSigningKey(dir, keyFile, origin string) (*Signer, error) {
	kdir := filepath.Join(dir, keysDir)
	if err := os.MkdirAll(kdir, 0o700); err != nil {
		return nil, fmt.Errorf("create keys dir: %w", err)
	}
	var priv ed25519.PrivateKey
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("read signing key: %w", err)
		}
		if priv, err = parsePrivateKey(b); err != nil {
			return nil, fmt.Errorf("signing key %s: %w", keyFile, err)
		}
	} else {
		path := filepath.Join(kdir, privateKeyFile)
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			if priv, err = parsePrivateKey(b); err != nil {
				return nil, fmt.Errorf("signing key %s: %w", path, err)
			}
		case errors.Is(err, os.ErrNotExist):
			if priv, err = generateKeyFile(path); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("read signing key: %w", err)
		}
	}
	k, err := NewSigner(priv, origin)
	if err != nil {
		return nil, err
	}
	if err := addVerifierKey(filepath.Join(kdir, verifierFile), k.verifier); err != nil {
		return nil, err
	}
	return k, nil
}

// NewSigner returns the signer of origin's checkpoints with priv.
func NewSigner(priv ed25519.PrivateKey, origin string) (*Signer, error) {
	vkey, err := note.NewEd25519VerifierKey(origin, priv.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	// vkey is "<name>+<hash>+<key>"; the signer key reuses name and hash.
	name, rest, _ := strings.Cut(vkey, "+")
	hash, _, _ := strings.Cut(rest, "+")
	skey := "PRIVATE+KEY+" + name + "+" + hash + "+" +
		base64.StdEncoding.EncodeToString(append([]byte{1}, priv.Seed()...))
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, fmt.Errorf("checkpoint signer (origin %q): %w", origin, err)
	}
	return &Signer{priv: priv, origin: origin, signer: signer, verifier: vkey}, nil
}

// parsePrivateKey accepts a PKCS#8 PEM Ed25519 key (as written by
// `openssl genpkey -algorithm ed25519`) or a note signer key
// ("PRIVATE+KEY+name+hash+base64").
func parsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	if s := strings.TrimSpace(string(b)); strings.HasPrefix(s, "PRIVATE+KEY+") {
		parts := strings.SplitN(s, "+", 5) // base64 may contain '+'
		if len(parts) != 5 {
			return nil, errors.New("malformed note signer key")
		}
		raw, err := base64.StdEncoding.DecodeString(parts[4])
		if err != nil || len(raw) != 33 || raw[0] != 1 {
			return nil, errors.New("malformed note signer key")
		}
		return ed25519.NewKeyFromSeed(raw[1:]), nil
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PKCS#8 PEM \"PRIVATE KEY\" block or a note signer key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want Ed25519", k)
	}
	return priv, nil
}

func generateKeyFile(path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write signing key: %w", werr)
	}
	return priv, syncDir(filepath.Dir(path))
}

// addVerifierKey appends vkey to the verifier file unless already listed.
func addVerifierKey(path, vkey string) error {
	keys, err := readVerifierKeys(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, k := range keys {
		if k == vkey {
			return nil
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("write verifier key: %w", err)
	}
	_, werr := f.WriteString(vkey + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write verifier key: %w", werr)
	}
	return syncDir(filepath.Dir(path))
}

func readVerifierKeys(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read verifier keys: %w", err)
	}
	var keys []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	return keys, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}

// PublicKeyFromVerifier decodes the Ed25519 public key of a note verifier key.
func PublicKeyFromVerifier(vkey string) (ed25519.PublicKey, error) {
	parts := strings.SplitN(vkey, "+", 3) // base64 may contain '+'
	if len(parts) != 3 {
		return nil, fmt.Errorf("%w: malformed verifier key", ErrInvalid)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != 1 {
		return nil, fmt.Errorf("%w: malformed verifier key", ErrInvalid)
	}
	return ed25519.PublicKey(raw[1:]), nil
}

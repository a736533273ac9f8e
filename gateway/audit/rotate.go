package audit

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// ActionKeyRotated is written by RotateKey.
const ActionKeyRotated = "config.key_rotated"

// loadVerifiers reads audit.pub and adds the current key.
func (s *Store) loadVerifiers() error {
	keys, err := readVerifierKeys(filepath.Join(s.cfg.Dir, keysDir, verifierFile))
	if err != nil {
		return err
	}
	if cur := s.key.Load().verifier; !slices.Contains(keys, cur) {
		keys = append(keys, cur)
	}
	s.verifiers.Store(&keys)
	return nil
}

// RotateKey replaces the checkpoint signing key with a new Ed25519 key.
// The new verifier key is added to keys/audit.pub before anything is signed
// with it (old checkpoints keep verifying under the old keys listed there),
// the new private key replaces keys/audit.key atomically (mode 0600; the old
// private key is gone), and a config.key_rotated event (details old_key,
// new_key: the public verifier keys) is appended and covered by a checkpoint
// signed with the new key.
//
// A store whose key comes from Config.SigningKeyFile cannot rotate itself
// (ErrInvalid): replace that file and restart; Open records nothing then, so
// prefer RotateKey.
func (s *Store) RotateKey(ctx context.Context, actor Actor) error {
	if s.cfg.SigningKeyFile != "" {
		return fmt.Errorf("audit rotate key: %w: the signing key is the file %s; replace it and restart",
			ErrInvalid, s.cfg.SigningKeyFile)
	}
	if err := Validate(&Event{Action: ActionKeyRotated, Actor: actor, Outcome: OutcomeSuccess}); err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	s.rotMu.Lock()
	defer s.rotMu.Unlock()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	next, err := NewSigner(priv, s.origin)
	if err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	kdir := filepath.Join(s.cfg.Dir, keysDir)
	if err := addVerifierKey(filepath.Join(kdir, verifierFile), next.verifier); err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	if err := replaceKeyFile(filepath.Join(kdir, privateKeyFile), priv); err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	prev := s.key.Swap(next)
	if err := s.loadVerifiers(); err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	if _, err := s.Append(ctx, Event{Action: ActionKeyRotated, Actor: actor, Outcome: OutcomeSuccess,
		Details: map[string]any{"old_key": prev.verifier, "new_key": next.verifier}}); err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		return fmt.Errorf("audit rotate key: %w", err)
	}
	s.log.Info("audit signing key rotated", "new_key", next.verifier)
	return nil
}

// Checkpoint appends a signed checkpoint of the tree now (besides the
// periodic ones) and returns it.
func (s *Store) Checkpoint(ctx context.Context) (Checkpoint, error) {
	reply := make(chan error, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w: store closed", ErrUnavailable)
	}
	select {
	case s.ckReqs <- reply:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w: %w", ErrUnavailable, ctx.Err())
	}
	select {
	case err := <-reply:
		if err != nil {
			return Checkpoint{}, err
		}
	case <-ctx.Done():
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w: %w", ErrUnavailable, ctx.Err())
	}
	return s.LatestCheckpoint(ctx)
}

// replaceKeyFile writes priv as PKCS#8 PEM to path atomically, mode 0600.
func replaceKeyFile(path string, priv ed25519.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("encode signing key: %w", err)
	}
	tmp := path + ".new"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write signing key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("write signing key: %w", werr)
	}
	return syncDir(filepath.Dir(path))
}

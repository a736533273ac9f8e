package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/loggate/loggate/gateway/audit"
)

// signedAudit is an Audit replica with the shared checkpoint key.
func (e *env) signedAudit(t testing.TB, key ed25519.PrivateKey) *Audit {
	t.Helper()
	a, err := NewAudit(AuditConfig{Client: e.client(t), Prefix: e.prefix, SigningKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func TestAuditProofsAndCheckpointsAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	key := newKey(t)
	replicas := []*Audit{e.signedAudit(t, key), e.signedAudit(t, key), e.signedAudit(t, key)}
	var wg sync.WaitGroup
	ids := make([][]string, len(replicas))
	for i, a := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				ev, err := a.Append(ctx, event("grant.view", "grt_1"))
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = append(ids[i], ev.ID)
			}
		}()
	}
	wg.Wait()
	cp, err := replicas[0].LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cp.Size, int64(75); got != want {
		t.Errorf("checkpoint size = %d, want %d", got, want)
	}
	// The signature verifies with the public key alone.
	vkey, err := note.NewEd25519VerifierKey(audit.DefaultOrigin, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.ParseCheckpoint(cp.Bytes(), vkey); err != nil {
		t.Errorf("checkpoint signature: %v", err)
	}
	if _, err := audit.ParseCheckpoint(cp.Bytes(), replicaVerifier(t)); err == nil {
		t.Error("checkpoint verified with an unrelated key")
	}
	root, err := cp.Root()
	if err != nil {
		t.Fatal(err)
	}
	// Every event, appended by any replica, is proven by any replica.
	for i, list := range ids {
		for _, id := range list {
			p, err := replicas[(i+1)%len(replicas)].Proof(ctx, id)
			if err != nil {
				t.Fatalf("Proof(%s): %v", id, err)
			}
			proof, err := p.RecordProof()
			if err != nil {
				t.Fatal(err)
			}
			if p.TreeSize < 75 {
				t.Errorf("proof tree size %d, want >= 75", p.TreeSize)
			}
			if p.TreeSize == cp.Size {
				if err := tlog.CheckRecord(proof, cp.Size, root, p.LeafIndex, tlog.RecordHash(p.Record)); err != nil {
					t.Errorf("CheckRecord(%s): %v", id, err)
				}
			}
			if err := audit.VerifyInclusion(p, vkey); err != nil {
				t.Errorf("VerifyInclusion(%s): %v", id, err)
			}
		}
	}
	// The tree is the one the records define: Verify recomputes it.
	rep, err := replicas[2].Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Root != cp.RootHash {
		t.Errorf("Verify = %+v, want OK with root %s", rep, cp.RootHash)
	}
}

func replicaVerifier(t *testing.T) string {
	v, err := note.NewEd25519VerifierKey(audit.DefaultOrigin, newKey(t).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuditVerifyDetectsTreeAndCheckpointTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(t *testing.T, e *env, a *Audit)
		want   string
	}{
		{"stored tree hash changed", func(t *testing.T, e *env, a *Audit) {
			if err := e.client(t).HSet(context.Background(), a.treeKey(),
				strconv.FormatInt(tlog.StoredHashIndex(0, 2), 10), strings.Repeat("x", 32)).Err(); err != nil {
				t.Fatal(err)
			}
		}, "stored tree hashes"},
		{"checkpoint from another key", func(t *testing.T, e *env, a *Audit) {
			other, err := audit.NewSigner(newKey(t), audit.DefaultOrigin)
			if err != nil {
				t.Fatal(err)
			}
			cp, err := other.Sign(3, tlog.Hash{}, a.now())
			if err != nil {
				t.Fatal(err)
			}
			if err := e.client(t).HSet(context.Background(), a.headKey(), "cp", cp.Note).Err(); err != nil {
				t.Fatal(err)
			}
		}, "checkpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.signedAudit(t, newKey(t))
			for range 3 {
				if _, err := a.Append(context.Background(), event("grant.view", "g")); err != nil {
					t.Fatal(err)
				}
			}
			if rep, err := a.Verify(context.Background()); err != nil || !rep.OK() {
				t.Fatalf("before tampering: %+v, %v", rep, err)
			}
			tc.tamper(t, e, a)
			rep, err := a.Verify(context.Background())
			if !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("Verify error = %v, want ErrTampered", err)
			}
			if rep.OK() || !strings.Contains(rep.Problems[0].Detail, tc.want) {
				t.Errorf("Verify problems = %+v, want one about %q", rep.Problems, tc.want)
			}
		})
	}
}

func TestAuditWithoutKeyHasNoProofs(t *testing.T) {
	e := newEnv(t)
	a := e.audit(t)
	ev, err := a.Append(context.Background(), event("grant.view", "g"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Proof(context.Background(), ev.ID); !errors.Is(err, ErrNotSupported) {
		t.Errorf("Proof without key: %v, want ErrNotSupported", err)
	}
	// The tree is kept anyway: a replica with the key proves the event.
	signed := e.signedAudit(t, newKey(t))
	if _, err := signed.Append(context.Background(), event("grant.view", "g")); err != nil {
		t.Fatal(err)
	}
	p, err := signed.Proof(context.Background(), ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyInclusion(p, signed.VerifierKey()); err != nil {
		t.Error(err)
	}
}

func TestLoadSigningKey(t *testing.T) {
	dir := t.TempDir()
	key := newKey(t)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(dir, "k.pem")
	noteFile := filepath.Join(dir, "k.note")
	badFile := filepath.Join(dir, "bad")
	_ = os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	_ = os.WriteFile(noteFile, []byte("PRIVATE+KEY+loggate/audit+01020304+"+
		base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))+"\n"), 0o600)
	_ = os.WriteFile(badFile, []byte("nope"), 0o600)
	for _, tc := range []struct {
		name, path string
		ok         bool
	}{{"pkcs8 pem", pemFile, true}, {"note signer key", noteFile, true}, {"garbage", badFile, false},
		{"missing", filepath.Join(dir, "none"), false}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadSigningKey(tc.path)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !got.Equal(key) {
				t.Error("loaded a different key")
			}
		})
	}
}

// The Redis trail serves the same consistency proofs as the SQLite store,
// checked against the checkpoints it signed along the way.
func TestRedisConsistencyProof(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a := e.signedAudit(t, newKey(t))
	roots := map[int64]tlog.Hash{}
	for n := int64(1); n <= 12; n++ {
		if _, err := a.Append(ctx, event("grant.view", "g")); err != nil {
			t.Fatal(err)
		}
		cp, err := a.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		roots[n], _ = cp.Root()
	}
	for _, r := range [][2]int64{{1, 12}, {5, 8}, {8, 12}, {12, 12}} {
		p, err := a.Consistency(ctx, r[0], r[1])
		if err != nil {
			t.Fatalf("Consistency(%d, %d): %v", r[0], r[1], err)
		}
		if err := p.Check(roots[r[0]], roots[r[1]]); err != nil {
			t.Errorf("Check(%d, %d): %v", r[0], r[1], err)
		}
		if err := audit.VerifyConsistency(p, a.VerifierKeys()...); err != nil {
			t.Errorf("VerifyConsistency(%d, %d): %v", r[0], r[1], err)
		}
	}
	var re *audit.RangeError
	if _, err := a.Consistency(ctx, 3, 13); !errors.As(err, &re) || re.Param != "to" {
		t.Errorf("to beyond the trail: %v, want a RangeError on to", err)
	}
}

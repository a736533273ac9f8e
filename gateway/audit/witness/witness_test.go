package witness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// storeSource serves a real store's commitments as the gateway's public
// endpoints do.
type storeSource struct {
	s    *audit.Store
	keys []string // nil: the store's
}

func (src storeSource) Keys(context.Context) ([]string, error) {
	if src.keys != nil {
		return src.keys, nil
	}
	return src.s.VerifierKeys(), nil
}

func (src storeSource) Checkpoint(ctx context.Context) ([]byte, error) {
	cp, err := src.s.LatestCheckpoint(ctx)
	return cp.Bytes(), err
}

func (src storeSource) Consistency(ctx context.Context, from, to int64) (audit.ConsistencyProof, error) {
	return src.s.Consistency(ctx, from, to)
}

func open(t *testing.T, dir string, cfg audit.Config) *audit.Store {
	t.Helper()
	cfg.Dir = dir
	s, err := audit.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func add(t *testing.T, s *audit.Store, n int, action string) {
	t.Helper()
	for range n {
		if _, err := s.Append(context.Background(), audit.Event{Action: action,
			Actor: audit.Actor{Kind: audit.ActorSystem, ID: "test"}, Outcome: audit.OutcomeSuccess}); err != nil {
			t.Fatal(err)
		}
	}
}

func check(t *testing.T, src Source, prev *State) (Result, error) {
	t.Helper()
	return Check(context.Background(), src, prev, Options{Server: "test"})
}

func mustCheck(t *testing.T, src Source, prev *State) *State {
	t.Helper()
	res, err := check(t, src, prev)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return res.State
}

func wantFailure(t *testing.T, err error, kind, word string) {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) || f.Kind != kind || !strings.Contains(err.Error(), word) {
		t.Fatalf("got %v, want a %s failure mentioning %q", err, kind, word)
	}
}

func TestWitnessAcceptsGrowth(t *testing.T) {
	s := open(t, t.TempDir(), audit.Config{})
	add(t, s, 3, "a.b")
	res, err := check(t, storeSource{s: s}, nil)
	if err != nil || !res.First || res.State.Size < 3 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	st := res.State
	for _, n := range []int{0, 1, 7, 64} {
		add(t, s, n, "a.c")
		res, err := check(t, storeSource{s: s}, st)
		if err != nil {
			t.Fatalf("after %d more: %v", n, err)
		}
		if res.Grew != int64(n) || res.First {
			t.Errorf("after %d more: grew %d", n, res.Grew)
		}
		st = res.State
	}
}

func TestWitnessDetectsRollback(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, audit.Config{})
	add(t, s, 5, "a.b")
	old := t.TempDir()
	copyDir(t, dir, old) // what a backup holds: 5 events
	add(t, s, 5, "a.b")
	st := mustCheck(t, storeSource{s: s}, nil)
	s.Close()
	restored := open(t, old, audit.Config{})
	_, err := check(t, storeSource{s: restored}, st)
	wantFailure(t, err, KindRollback, "truncated or rolled back")
}

func TestWitnessDetectsForkEvenResigned(t *testing.T) {
	// Two trails with the same signing key: the attacker holds the key and
	// rewrote history, re-signing every checkpoint.
	keyDir := t.TempDir()
	a := open(t, filepath.Join(keyDir, "a"), audit.Config{})
	add(t, a, 4, "a.b")
	keyFile := filepath.Join(keyDir, "a", "keys", "audit.key")
	b := open(t, filepath.Join(keyDir, "b"), audit.Config{SigningKeyFile: keyFile})
	add(t, b, 3, "a.b")
	add(t, b, 1, "rewritten.event")
	cpA, _ := a.LatestCheckpoint(context.Background())
	cpB, _ := b.LatestCheckpoint(context.Background())
	if cpA.Size != cpB.Size || cpA.KeyID != cpB.KeyID {
		t.Fatalf("want two trails of one size and one key, got %d/%s and %d/%s", cpA.Size, cpA.KeyID, cpB.Size, cpB.KeyID)
	}
	st := mustCheck(t, storeSource{s: a}, nil)
	_, err := check(t, storeSource{s: b}, st)
	wantFailure(t, err, KindFork, "rewritten")
	add(t, b, 5, "a.b") // the rewritten trail grows past what the witness saw
	_, err = check(t, storeSource{s: b}, st)
	wantFailure(t, err, KindFork, "does not extend")
}

func TestWitnessKeyHistory(t *testing.T) {
	s := open(t, t.TempDir(), audit.Config{})
	add(t, s, 2, "a.b")
	st := mustCheck(t, storeSource{s: s}, nil)
	other := open(t, t.TempDir(), audit.Config{})
	add(t, other, 3, "a.b")

	// A checkpoint no published key signed.
	_, err := check(t, storeSource{s: other, keys: s.VerifierKeys()}, st)
	wantFailure(t, err, KindKey, "key history")
	// A history without the key the witness saw (another trail, same origin).
	_, err = check(t, storeSource{s: other}, st)
	wantFailure(t, err, KindKey, "no longer lists")
	// A rotation is accepted and the new key kept.
	if err := s.RotateKey(context.Background(), audit.Actor{Kind: audit.ActorSystem, ID: "t"}); err != nil {
		t.Fatal(err)
	}
	res, err := check(t, storeSource{s: s}, st)
	if err != nil || len(res.NewKeys) != 1 || len(res.State.Keys) != 2 {
		t.Fatalf("after rotation: %+v, %v", res, err)
	}
}

func TestWitnessRefusesAnotherOrigin(t *testing.T) {
	s := open(t, t.TempDir(), audit.Config{})
	st := mustCheck(t, storeSource{s: s}, nil)
	other := open(t, t.TempDir(), audit.Config{Origin: "other/trail"})
	_, err := check(t, storeSource{s: other}, st)
	if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "other/trail") {
		t.Fatalf("got %v, want ErrState naming the other origin", err)
	}
}

func TestWitnessStale(t *testing.T) {
	s := open(t, t.TempDir(), audit.Config{})
	later := func() time.Time { return time.Now().Add(3 * time.Hour) }
	_, err := Check(context.Background(), storeSource{s: s}, nil, Options{MaxAge: time.Hour, Now: later})
	wantFailure(t, err, KindStale, "rollback")
}

func TestStateFile(t *testing.T) {
	s := open(t, t.TempDir(), audit.Config{})
	add(t, s, 2, "a.b")
	st := mustCheck(t, storeSource{s: s}, nil)
	path := filepath.Join(t.TempDir(), "witness.json")
	if got, err := LoadState(path); got != nil || err != nil {
		t.Fatalf("missing file: %v, %v; want nil, nil", got, err)
	}
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	back, err := LoadState(path)
	if err != nil || back.Checkpoint != st.Checkpoint || back.Size != st.Size {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	good, _ := os.ReadFile(path)
	for name, b := range map[string]string{
		"empty":          "",
		"not json":       "hello",
		"unknown field":  strings.Replace(string(good), `"version"`, `"bogus": 1, "version"`, 1),
		"other version":  strings.Replace(string(good), `"version": 1`, `"version": 2`, 1),
		"size edited":    strings.Replace(string(good), `"size": `, `"size": 1`, 1),
		"note edited":    strings.Replace(string(good), "\\n2\\n", "\\n1\\n", 1),
		"keys dropped":   strings.Replace(string(good), `"verifier_keys": [`, `"verifier_keys": [], "x": [`, 1),
		"trailing data":  string(good) + "{}",
		"origin changed": strings.Replace(string(good), `"origin": "loggate/audit"`, `"origin": "x"`, 1),
	} {
		if _, err := ParseState([]byte(b)); !errors.Is(err, ErrState) {
			t.Errorf("%s: %v, want ErrState", name, err)
		}
	}
}

func FuzzParseState(f *testing.F) {
	s, err := audit.Open(context.Background(), audit.Config{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	res, err := Check(context.Background(), storeSource{s: s}, nil, Options{})
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "st")
	if err := res.State.Save(path); err != nil {
		f.Fatal(err)
	}
	good, _ := os.ReadFile(path)
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseState(b)
		if err != nil {
			if !errors.Is(err, ErrState) {
				t.Fatalf("error %v does not wrap ErrState", err)
			}
			return
		}
		// Whatever parses is self-consistent: its checkpoint verifies
		// under its keys and states its size and root.
		cp, err := st.checkpoint()
		if err != nil || cp.Size != st.Size || cp.RootHash != st.RootHash || cp.Origin != st.Origin {
			t.Fatalf("accepted an inconsistent state: %+v (%v)", st, err)
		}
	})
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

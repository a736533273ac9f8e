package auth

import (
	"sync"
	"testing"
)

// TestKeyRotationRightAfterAFetch: the provider starts signing with a new
// key moments after the gateway fetched its JWKS (at startup or on the
// hourly refresh). The first token with the new kid must verify at once,
// not be refused as unknown_key until the refetch rate limit lapses; and
// parallel requests carrying it share one refetch.
func TestKeyRotationRightAfterAFetch(t *testing.T) {
	e := newEnv(t, nil)
	k := testKeys()
	if _, err := e.bearer(e.op.mint(baseClaims())); err != nil {
		t.Fatalf("token with k1: %v", err)
	}
	hits := e.op.hits()
	e.op.mu.Lock()
	e.op.signer = signingKey{"k2", k[1]}
	e.op.published = []signingKey{{"k1", k[0]}, {"k2", k[1]}}
	e.op.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		tok := e.op.mint(with(baseClaims(), "jti", string(rune('a'+i))))
		wg.Go(func() { _, errs[i] = e.bearer(tok) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d with the new kid right after a fetch: %v (reason %q)", i, err, reasonOf(err))
		}
	}
	if got := e.op.hits() - hits; got != 1 {
		t.Errorf("JWKS fetches = %d, want 1 shared refetch", got)
	}
}

package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// keysMaxAge bounds how long fetched keys are trusted without a refetch, so
	// a key the provider withdraws stops verifying (go-oidc caches forever).
	keysMaxAge = time.Hour
	// keysMinRefetch rate-limits refetches triggered by unknown key ids, so a
	// flood of tokens with random kids cannot be proxied 1:1 to the provider.
	keysMinRefetch = 10 * time.Second
	// maxJWKSBytes bounds the JWKS response.
	maxJWKSBytes = 1 << 20
)

var (
	errUnknownKey   = errors.New("no key with this key id")
	errBadSignature = errors.New("signature does not verify")
)

// keyFailure carries the typed reason from keySet.VerifySignature out through
// go-oidc, which flattens the error into a string.
type keyFailure struct {
	err      error
	verified bool // the signature was checked and is good
}

type keyFailureKey struct{}

// keySet implements oidc.KeySet with a bounded cache age and a rate-limited
// refetch on unknown key ids. Only asymmetric public keys are kept.
type keySet struct {
	url    string
	client *http.Client
	algs   []string
	now    func() time.Time
	log    *slog.Logger

	fetchMu sync.Mutex // serialises fetches; held across the HTTP call

	mu      sync.Mutex // guards the fields below
	keys    []jose.JSONWebKey
	fetched time.Time // last successful fetch
	tried   time.Time // last attempt
	// missTried is the last refetch for an unknown key id. It has its own
	// clock so that a scheduled fetch made just before the provider rotates
	// does not hide the new key, while a flood of random kids still costs
	// one fetch per keysMinRefetch.
	missTried time.Time
}

func newKeySet(url string, client *http.Client, algs []string, now func() time.Time, log *slog.Logger) *keySet {
	return &keySet{url: url, client: client, algs: algs, now: now, log: log}
}

// ensure fetches keys if none are cached or they are older than keysMaxAge
// (rate-limited). Stale keys stay usable while the provider is unreachable.
func (k *keySet) ensure(ctx context.Context) error {
	k.mu.Lock()
	fresh := len(k.keys) > 0 && k.now().Sub(k.fetched) < keysMaxAge
	k.mu.Unlock()
	if fresh {
		return nil
	}
	err := k.refetch(ctx, true)
	k.mu.Lock()
	have := len(k.keys) > 0
	k.mu.Unlock()
	switch {
	case have:
		return nil // possibly stale when the provider is unreachable; logged by refetch
	case err != nil:
		return err
	}
	return errors.New("provider has no usable signing keys")
}

// refetch downloads the JWKS. With limited, it is skipped when an attempt
// happened less than keysMinRefetch ago.
func (k *keySet) refetch(ctx context.Context, limited bool) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.Lock()
	last := k.tried
	k.mu.Unlock()
	if limited && !last.IsZero() && k.now().Sub(last) < keysMinRefetch {
		return nil
	}
	return k.fetchLocked(ctx)
}

// fetchLocked downloads the JWKS and caches it; the caller holds fetchMu.
func (k *keySet) fetchLocked(ctx context.Context) error {
	k.mu.Lock()
	k.tried = k.now()
	k.mu.Unlock()
	keys, err := k.fetch(ctx)
	if err != nil {
		k.log.Warn("fetch jwks failed", "url", k.url, "err", err)
		return err
	}
	k.mu.Lock()
	k.keys, k.fetched = keys, k.now()
	k.mu.Unlock()
	return nil
}

// refetchUnknownKid refetches the JWKS for a key id missing from the cache,
// at most once per keysMinRefetch (on the missTried clock). Concurrent
// callers wait for a fetch in flight and use its result.
func (k *keySet) refetchUnknownKid(ctx context.Context, kid, alg string) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	if len(k.candidates(kid, alg)) > 0 {
		return nil // fetched while this caller waited
	}
	k.mu.Lock()
	skip := !k.missTried.IsZero() && k.now().Sub(k.missTried) < keysMinRefetch
	if !skip {
		k.missTried = k.now()
	}
	k.mu.Unlock()
	if skip {
		return nil
	}
	return k.fetchLocked(ctx)
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get jwks: status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	var keys []jose.JSONWebKey
	for _, raw := range set.Keys {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(raw); err != nil {
			continue // unsupported kty or alg: ignore, like go-oidc does
		}
		if jwk.Use != "" && jwk.Use != "sig" {
			continue
		}
		if _, symmetric := jwk.Key.([]byte); symmetric {
			continue
		}
		if !jwk.IsPublic() {
			jwk = jwk.Public()
		}
		if !jwk.Valid() {
			continue
		}
		keys = append(keys, jwk)
	}
	return keys, nil
}

// candidates returns cached keys matching kid (all keys when kid is empty).
func (k *keySet) candidates(kid, alg string) []jose.JSONWebKey {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []jose.JSONWebKey
	for _, key := range k.keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != alg {
			continue
		}
		out = append(out, key)
	}
	return out
}

// VerifySignature implements oidc.KeySet.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := k.verify(ctx, raw)
	if slot, ok := ctx.Value(keyFailureKey{}).(*keyFailure); ok {
		slot.err, slot.verified = err, err == nil
	}
	return payload, err
}

func (k *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	algs := make([]jose.SignatureAlgorithm, len(k.algs))
	for i, a := range k.algs {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("parse jws: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	if err := k.ensure(ctx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
	}
	cands := k.candidates(hdr.KeyID, hdr.Algorithm)
	if len(cands) == 0 && hdr.KeyID != "" {
		// Possibly a rotation: the provider signs with a key we have not seen.
		if err := k.refetchUnknownKid(ctx, hdr.KeyID, hdr.Algorithm); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrProviderUnavailable, err)
		}
		cands = k.candidates(hdr.KeyID, hdr.Algorithm)
	}
	if len(cands) == 0 {
		return nil, errUnknownKey
	}
	for _, key := range cands {
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	return nil, errBadSignature
}

package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func benchEnv(b *testing.B) (*testOP, *Authenticator) {
	b.Helper()
	clk := newClock()
	op := newTestOP(b, clk)
	a, err := New(Config{IssuerURL: op.issuer(), ClientID: "gateway", SessionKeys: [][]byte{testSessionKey}, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close() })
	return op, a
}

// BenchmarkVerifyTokenCached is the per-request cost of a bearer token seen before.
func BenchmarkVerifyTokenCached(b *testing.B) {
	op, a := benchEnv(b)
	tok := op.mint(baseClaims())
	ctx := context.Background()
	if _, err := a.VerifyToken(ctx, tok); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := a.VerifyToken(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyTokenFull is a first sight: RS256 signature and claim checks.
func BenchmarkVerifyTokenFull(b *testing.B) {
	op, a := benchEnv(b)
	tok := op.mint(baseClaims())
	ctx := context.Background()
	now := a.now()
	for b.Loop() {
		if _, _, err := a.verifyToken(ctx, tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionAuthenticate is the per-request cost of a session cookie.
func BenchmarkSessionAuthenticate(b *testing.B) {
	op, a := benchEnv(b)
	now := a.now().Unix()
	s := &session{ID: newSessionID(), Issuer: op.issuer(), Subject: "u", Groups: []string{"sre", "dev"},
		Issued: now, Seen: now, Absolute: now + 3600, TokenExp: now + 3600, Refresh: randomToken(), IDToken: op.mint(baseClaims())}
	v, err := a.sealSession(s)
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.AddCookie(&http.Cookie{Name: a.sessionCookieName(), Value: v})
	b.ReportMetric(float64(len(v)), "cookie-bytes")
	for b.Loop() {
		if _, err := a.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSafeNext(b *testing.B) {
	for b.Loop() {
		SafeNext("/streams/api%20x?env=prod&since=5m")
	}
}

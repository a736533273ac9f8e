package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

func FuzzOpenCookie(f *testing.F) {
	a, err := New(Config{IssuerURL: "https://idp.example", ClientID: "gw", SessionKeys: [][]byte{testSessionKey}})
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	good, _ := a.seal(purposeSession, &session{ID: "s", Issuer: "https://idp.example", Subject: "u"})
	for _, s := range []string{good, "", "AQ", good[:len(good)-2], "!!!!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		// Seeds are sealed with a random nonce per process, so the invariant is
		// about content: whatever opens must be exactly what this key sealed.
		var s session
		if err := a.open(purposeSession, v, &s); err == nil && (s.ID != "s" || s.Subject != "u") {
			t.Fatalf("forged cookie %q opened as %+v", v, s)
		}
	})
}

func FuzzVerifyToken(f *testing.F) {
	clk := newClock()
	op := newTestOP(f, clk)
	defer op.srv.Close()
	a, err := New(Config{IssuerURL: op.issuer(), ClientID: "gateway", SessionKeys: [][]byte{testSessionKey}, Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	valid := op.mint(baseClaims())
	for _, s := range []string{valid, "a.b.c", "e30.e30.", "eyJhbGciOiJub25lIn0.e30.", tamper(valid), valid + "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		id, err := a.VerifyToken(context.Background(), raw)
		if err == nil {
			// Only the minted token's content can verify (base64 may have
			// equivalent spellings, so compare the identity, not the text).
			if id.Subject != "u-bob" || !slices.Equal(id.Groups, []string{"dev", "sre"}) {
				t.Fatalf("identity %+v", id)
			}
			return
		}
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("err = %v, want ErrInvalidToken", err)
		}
	})
}

// TestConcurrentRefreshSpendsTokenOnce: parallel requests with the same
// expired session refresh once, so a rotating refresh token is not burnt.
func TestConcurrentRefreshSpendsTokenOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.op.idTTL = 10 * time.Minute
	e.login(e.browser, "/")
	ck := e.sessionCookie(e.browser)
	e.clk.Advance(15 * time.Minute)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.AddCookie(ck)
			_, err := e.a.AuthenticateHTTP(httptest.NewRecorder(), r)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("parallel refresh: %v", err)
		}
	}
	if n := len(e.rec.byAction(ActionRefresh)); n != 1 {
		t.Errorf("refreshes = %d, want 1", n)
	}
}

package devidp

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLoginFormOrigin pins which form posts the provider believes come from
// its own page. Chromium posts with "Origin: null" from a page served with
// "Referrer-Policy: no-referrer"; that is accepted only together with
// "Sec-Fetch-Site: same-origin", which no other site can make a browser send.
func TestLoginFormOrigin(t *testing.T) {
	e := newEnv(t, nil)
	authURL := e.oauth2(t, "web", "openid").AuthCodeURL("s")
	tests := []struct {
		name, origin, site string
		wantOK             bool
	}{
		{"no browser headers (curl)", "", "", true},
		{"own origin", e.srv.URL, "same-origin", true},
		{"own origin, no fetch metadata", e.srv.URL, "", true},
		{"null origin, same-origin fetch", "null", "same-origin", true},
		{"null origin without fetch metadata", "null", "", false},
		{"null origin, cross-site", "null", "cross-site", false},
		{"null origin, same-site", "null", "same-site", false},
		{"null origin, none", "null", "none", false},
		{"foreign origin", "https://evil.example", "", false},
		{"foreign origin claiming same-origin", "https://evil.example", "same-origin", false},
		{"own origin, cross-site", e.srv.URL, "cross-site", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := url.Values{"request": {e.openLogin(t, authURL)}, "username": {"alice"}, "password": {"alice"}}
			r, _ := http.NewRequest(http.MethodPost, e.issuer+"/auth", strings.NewReader(form.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.site != "" {
				r.Header.Set("Sec-Fetch-Site", tt.site)
			}
			resp, err := e.noRedirect().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := http.StatusForbidden
			if tt.wantOK {
				want = http.StatusSeeOther
			}
			if resp.StatusCode != want {
				t.Errorf("status = %d, want %d", resp.StatusCode, want)
			}
		})
	}
}

func TestSignIDToken(t *testing.T) {
	e := newEnv(t, nil)
	raw, err := e.p.SignIDToken(map[string]any{"iss": e.p.Issuer(), "sub": "dev-alice", "aud": "web", "exp": e.clock.Now().Add(time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	idt, err := e.verifier(t, "web").Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("a signed token does not verify against the JWKS: %v", err)
	}
	if idt.Subject != "dev-alice" || e.p.Issuer() != e.issuer {
		t.Errorf("subject %q issuer %q, want dev-alice and %q", idt.Subject, e.p.Issuer(), e.issuer)
	}
	// The provider's own endpoints still refuse it as an access token.
	req, _ := http.NewRequest(http.MethodGet, e.issuer+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+raw)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("userinfo with an ID token: status %d, want 401", resp.StatusCode)
	}
}

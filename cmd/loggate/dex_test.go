package main

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDexBearerTokens: tokens Dex issues to the CLI's public client are
// accepted (plain, and with the gateway's audience asked for through Dex's
// cross-client scope); Dex's groups reach the policy; tokens for another
// client, or from another Dex (another issuer), are refused and audited.
func TestDexBearerTokens(t *testing.T) {
	g := startDexGateway(t, dexOptions{})
	carol := g.dex.cliToken("carol")

	alice := g.dex.cliToken("alice")
	claims := jwtPayload(t, alice)
	status, body := g.bearerStatus(alice, nil)
	if status != http.StatusOK {
		t.Fatalf("alice's CLI token: %d %s", status, body)
	}
	if want := fmt.Sprintf(`"id":%q`, g.dex.issuer+"|"+claims["sub"].(string)); !strings.Contains(body, want) ||
		!strings.Contains(body, `"engineers"`) {
		t.Errorf("/me for alice = %s, want %s and the group engineers from Dex", body, want)
	}

	// The CLI asks for the gateway's audience: aud names both, azp the CLI.
	cross := g.dex.cliToken("alice", "audience:server:client_id:"+dexWebClient)
	cc := jwtPayload(t, cross)
	aud, _ := cc["aud"].([]any)
	if len(aud) != 2 || !slices.Contains(aud, any(dexWebClient)) || cc["azp"] != dexCLIClient {
		t.Fatalf("cross-client token aud=%v azp=%v, want [%s %s] and azp %s", cc["aud"], cc["azp"], dexWebClient, dexCLIClient, dexCLIClient)
	}
	if status, body := g.bearerStatus(cross, nil); status != http.StatusOK {
		t.Errorf("cross-client token: %d %s, want 200", status, body)
	}

	// Groups from Dex decide: carol (loggate-admins at Dex) registers a
	// source, alice (engineers) may ask for its stream, mallory (no group)
	// may not manage sources nor ask.
	source := map[string]any{"name": "checkout", "streams": []map[string]string{{"service": "checkout", "env": "staging"}}}
	if code := g.call("POST", "/api/v1/sources", g.dex.cliToken("mallory"), source, nil); code != http.StatusForbidden {
		t.Errorf("mallory creates a source: %d, want 403", code)
	}
	if code := g.call("POST", "/api/v1/sources", carol, source, nil); code != http.StatusCreated {
		t.Fatalf("carol (loggate-admins at Dex) creates a source: %d, want 201", code)
	}
	ask := func(tok string) (int, string) {
		t.Helper()
		c := newWebClient(t, g.url, nil)
		r, b := c.postJSON("/api/v1/requests",
			map[string]any{"service": "checkout", "env": "staging", "duration": "10m", "reason": "dex test"},
			http.Header{"Authorization": {"Bearer " + tok}})
		return r.StatusCode, b
	}
	if status, body := ask(alice); status != http.StatusCreated || !strings.Contains(body, `"grant":{`) {
		t.Errorf("alice asks for checkout/staging: %d %s, want 201 with a grant (staging is auto-approved)", status, body)
	}
	if status, body := ask(g.dex.cliToken("mallory")); status != http.StatusCreated ||
		!strings.Contains(body, `"state":"denied"`) || !strings.Contains(body, "not a member of engineers") {
		t.Errorf("mallory (no groups) asks: %d %s, want the request denied by policy", status, body)
	}

	// A token for another client of the same Dex is not for loggate.
	st, other := g.dex.passwordToken(dexOtherClient, "other-secret", "alice", "openid email groups")
	if st != http.StatusOK {
		t.Fatalf("token for %s: %d %s", dexOtherClient, st, other.Error)
	}
	if status, _ := g.bearerStatus(other.IDToken, nil); status != http.StatusUnauthorized {
		t.Errorf("token issued to %s: %d, want 401", dexOtherClient, status)
	}

	// A second Dex with the same clients and users is another issuer.
	second := startDex(t, dexOptions{GatewayURL: g.url})
	foreign := second.cliToken("alice")
	if status, _ := g.bearerStatus(foreign, nil); status != http.StatusUnauthorized {
		t.Errorf("token from a second Dex (%s): %d, want 401", second.issuer, status)
	}

	evs, _ := g.auditAs(carol, "auth.failed")
	reasons := failedReasons(evs)
	if reasons["wrong_audience"] == 0 {
		t.Errorf("auth.failed reasons = %v, want wrong_audience for the other client's token", reasons)
	}
	if reasons["unknown_key"]+reasons["wrong_issuer"]+reasons["bad_signature"] == 0 {
		t.Errorf("auth.failed reasons = %v, want the second Dex's token refused (unknown_key or wrong_issuer)", reasons)
	}
}

// TestDexBrowserLogin signs alice in with real Chromium through Dex's own
// login form (authorization code + PKCE against Dex), checks who the page
// says she is and that Dex's groups arrived, then signs out.
func TestDexBrowserLogin(t *testing.T) {
	requireChromium(t)
	g := startDexGateway(t, dexOptions{})
	b := newBrowser(t, g.gatewayT, "alice")
	b.open("/")
	b.waitSignedOut()
	b.do("follow the sign-in link", chromedp.Click(chromedp.ID("signin-link")))
	b.fillForm("Dex's login form", `location.href.startsWith(`+jsString(g.dex.issuer)+`) && !!document.getElementById("login") && !!document.getElementById("password")`, 15*time.Second,
		chromedp.SendKeys(chromedp.ID("login"), "alice@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), dexPassword),
		chromedp.Click(chromedp.ID("submit-login")),
	)
	b.waitFor("signed in at loggate", `location.href.startsWith(`+jsString(g.url)+`) && !!document.getElementById("me-name")`, 20*time.Second)
	if got := b.text("#me"); !strings.Contains(got, "engineers") || !strings.Contains(got, "alice@example.com") {
		t.Errorf("who-you-are panel = %q, want Dex's email and group", got)
	}
	me := eval[string](b, `fetch("/api/v1/me").then(r => r.json()).then(j => j.via + " " + j.id)`)
	if !strings.HasPrefix(me, "session "+g.dex.issuer+"|") {
		t.Errorf("/api/v1/me in the browser = %q, want a session for a Dex subject", me)
	}

	b.do("sign out", chromedp.Click(chromedp.CSS(`#who form.logout button`)))
	b.waitFor("back at loggate", `location.href.startsWith(`+jsString(g.url)+`) && document.readyState === "complete"`, 15*time.Second)
	b.waitSignedOut()
	if got := eval[int](b, `fetch("/api/v1/me").then(r => r.status)`); got != http.StatusUnauthorized {
		t.Errorf("/api/v1/me after sign-out: %d, want 401", got)
	}
	b.checkProblems()

	evs, _ := g.auditAs(g.dex.cliToken("carol"), "auth.login")
	if len(evs) == 0 || !strings.Contains(fmt.Sprint(evs[0].Actor), "alice@example.com") {
		t.Errorf("auth.login events = %+v, want alice's browser login", evs)
	}
	if evs, _ := g.auditAs(g.dex.cliToken("carol"), "auth.logout"); len(evs) == 0 {
		t.Error("no auth.logout event for alice's sign-out")
	}
}

// TestDexDeviceLogin runs `loggate login` with the device grant against Dex:
// the test plays alice on Dex's device page (code, then Dex's login form),
// and the CLI ends signed in with Dex's token, which the gateway accepts.
func TestDexDeviceLogin(t *testing.T) {
	g := startDexGateway(t, dexOptions{})
	ct := newCLI(t, "")
	r := ct.start("login", "--server", g.url, "--flow", "device")
	verify := waitFor(t, r.stderr, `open (\S+) and enter the code`, 20*time.Second)
	code := waitFor(t, r.stderr, `enter the code ([A-Z]{4}-[A-Z]{4})`, 5*time.Second)
	if !strings.HasPrefix(verify, g.dex.issuer+"/device") {
		t.Errorf("verification URI %q is not Dex's device page", verify)
	}

	// alice's browser: the code page, then Dex's password form, following redirects.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 15 * time.Second}
	page := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, sb.String()
	}
	resp, body := page(browser.PostForm(g.dex.issuer+"/device/auth/verify_code", url.Values{"user_code": {code}}))
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="password"`) {
		t.Fatalf("after entering the code: %d at %s, want Dex's login form:\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	resp, body = page(browser.PostForm(resp.Request.URL.String(), url.Values{"login": {"alice@example.com"}, "password": {dexPassword}}))
	if resp.StatusCode != http.StatusOK || !strings.Contains(strings.ToLower(body), "login successful") {
		t.Fatalf("after the password: %d at %s, want Dex's device success page:\n%s", resp.StatusCode, resp.Request.URL, body)
	}

	if got := r.wait(t, 30*time.Second); got != 0 {
		t.Fatalf("login exit %d\nstdout: %s\nstderr: %s", got, r.stdout, r.stderr)
	}
	if out := r.stdout.String(); !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "engineers") {
		t.Errorf("login output %q, want alice's email and Dex's groups", out)
	}
	if out, errOut, code := ct.run("whoami"); code != 0 || !strings.Contains(out, "alice@example.com") {
		t.Errorf("whoami after device login: exit %d %q %q", code, out, errOut)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const xssLine = `<img src=x onerror=alert(1)><script>alert(2)</script>`

// TestBrowserAccessFlow drives the UI in real Chromium, as three people in
// three browsers: alice signs in through the development provider and asks
// for prod; bob's open inbox shows the request without a reload and he
// approves it; alice watches ingested lines arrive in the live viewer (a
// hostile line stays text), searches, filters, pauses, loses and regains
// follow mode, then revokes and sees the end banner; carol finds it all in
// the audit search and the grant's timeline.
func TestBrowserAccessFlow(t *testing.T) {
	requireChromium(t)
	g := startGateway(t)
	src := g.r.SourceTokens["checkout/prod"]
	if src == "" {
		t.Fatal("no demo source token for checkout/prod")
	}

	alice := newBrowser(t, g, "alice")
	bob := newBrowser(t, g, "bob")

	// Signed out, a page offers sign-in that comes back to it.
	alice.open("/")
	alice.waitSignedOut()
	if got, want := eval[string](alice, `document.getElementById("signin-link").getAttribute("href")`), "/login?next=%2F"; got != want {
		t.Errorf("sign-in link = %q, want %q", got, want)
	}
	alice.screenshot("signin")
	alice.signIn("alice", "alice")
	if got := alice.text("#me-name"); got != "alice" {
		t.Errorf("header name = %q, want alice", got)
	}
	if got := alice.text("#me"); !strings.Contains(got, "engineers") || !strings.Contains(got, "alice@example.com") {
		t.Errorf("who-you-are panel = %q, want email and groups", got)
	}
	alice.waitFor("streams", `document.querySelector('#ask-stream option[value="checkout/prod"]')`, 10*time.Second)
	if got := alice.text("#streams"); !strings.Contains(got, "1 approval from sre-leads") {
		t.Errorf("streams table = %q, want checkout/prod needing 1 approval from sre-leads", got)
	}

	// Bob's inbox is open and empty before alice asks.
	bob.open("/inbox")
	bob.signIn("bob", "bob")
	if got := eval[string](bob, `location.pathname`); got != "/inbox" {
		t.Fatalf("after sign-in bob is on %q, want /inbox", got)
	}
	bob.waitFor("empty inbox", `!document.getElementById("inbox-empty").hidden`, 10*time.Second)
	eval[bool](bob, `window.__sameDocument = true`)

	// Policy's refusal is shown with its reason.
	alice.ask("ask without a ticket", "checkout/prod", "15m", "", "just looking")
	alice.waitFor("denial", `document.getElementById("ask-result").textContent.includes("denied")`, 10*time.Second)
	if got := alice.text("#ask-result"); !strings.Contains(got, "ticket reference") {
		t.Errorf("denial = %q, want the policy's reason", got)
	}

	alice.setInput("ask-reason", "")
	alice.do("ask for checkout/prod",
		chromedp.SendKeys(chromedp.ID("ask-reason"), "INC-4242 checkout returns 500s"),
		chromedp.Click(chromedp.ID("ask-submit")),
	)
	alice.waitFor("pending result", `document.getElementById("ask-result").textContent.includes("pending")`, 10*time.Second)
	alice.waitFor("request in list", `document.querySelector('#reqs tr[data-request]')`, 10*time.Second)

	// It appears in bob's inbox without a reload.
	bob.waitFor("request in inbox", `document.querySelector("#inbox [data-request]")`, 10*time.Second)
	if !eval[bool](bob, `window.__sameDocument === true`) {
		t.Error("bob's inbox reloaded; want the request to appear in the same document")
	}
	card := bob.text("#inbox [data-request]")
	for _, want := range []string{"alice@example.com", "checkout/prod", "INC-4242 checkout returns 500s", "15m", "sre-leads", "No approval yet"} {
		if !strings.Contains(card, want) {
			t.Errorf("inbox card lacks %q: %q", want, card)
		}
	}
	bob.screenshot("inbox")
	bob.do("approve",
		chromedp.SendKeys(chromedp.CSS(`#inbox [data-request] input[name="comment"]`), "ok, go"),
		chromedp.Click(chromedp.CSS(`#inbox [data-request] button[type="submit"]`)),
	)
	bob.waitFor("decision recorded", `!document.querySelector("#inbox [data-request]") && document.querySelector("#decided li")`, 10*time.Second)
	if got := bob.text("#decided"); !strings.Contains(got, "approved") {
		t.Errorf("decided list = %q, want approved", got)
	}

	// Alice's page picks up the grant by itself; she opens the viewer.
	alice.waitFor("active grant", `document.querySelector("#grants [data-grant]")`, 15*time.Second)
	grantID := eval[string](alice, `document.querySelector("#grants [data-grant]").dataset.grant`)
	alice.waitFor("countdown", `/\d+m \d+s/.test(document.querySelector("#grants [data-expires]").textContent)`, 5*time.Second)
	alice.screenshot("home")
	alice.do("open the viewer", chromedp.Click(chromedp.CSS(`#grants [data-grant] a.button`)))
	alice.waitFor("viewer page", `location.pathname === "/grants/`+grantID+`/view"`, 10*time.Second)
	alice.waitFor("live tail", `document.getElementById("v-state").textContent === "live"`, 10*time.Second)
	if got := alice.text("#v-stream"); got != "checkout/prod" {
		t.Errorf("viewer stream = %q", got)
	}

	hostile, _ := json.Marshal(map[string]string{"message": xssLine, "level": "warn"})
	lines := []string{
		`{"message":"payment failed for order ord_1","level":"error","order":"ord_1","http.status":"502"}`,
		string(hostile),
		`{"message":"calling payments with Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789","level":"debug"}`,
	}
	for i := range 20 {
		lines = append(lines, fmt.Sprintf(`{"message":"GET /api/cart/%d 200 in %dms","level":"info","route":"/api/cart"}`, i, 10+i))
	}
	if code := g.ingest("checkout", "prod", src, lines...); code != 200 {
		t.Fatalf("ingest: status %d", code)
	}
	alice.waitFor("lines rendered", `document.querySelectorAll("#log .line").length >= 23`, 10*time.Second)

	// The hostile line is text: same characters, no element made from it,
	// no dialog (checkProblems fails on any).
	if !eval[bool](alice, `[...document.querySelectorAll("#log .line .msg")].some(m => m.textContent === `+jsString(xssLine)+`)`) {
		t.Errorf("hostile line not shown verbatim as text")
	}
	if n := eval[int](alice, `document.querySelectorAll("#log img, #log script, #log [onerror]").length`); n != 0 {
		t.Errorf("log view has %d img/script elements; a log line became markup", n)
	}
	if got := alice.text("#log"); strings.Contains(got, "abcdefghijklmnop") {
		t.Error("a secret reached the viewer")
	}
	if got := alice.text("#v-redactions"); got == "0" || got == "" {
		t.Errorf("redactions counter = %q, want > 0", got)
	}

	// Level filter and search with highlight.
	if n := eval[int](alice, `(() => { const s = document.getElementById("v-level"); s.value = "error"; s.dispatchEvent(new Event("change")); return document.querySelectorAll("#log .line").length })()`); n != 1 {
		t.Errorf("lines at level error+ = %d, want 1", n)
	}
	eval[bool](alice, `(() => { const s = document.getElementById("v-level"); s.value = ""; s.dispatchEvent(new Event("change")); return true })()`)
	alice.do("search", chromedp.SendKeys(chromedp.ID("v-search"), "payment"))
	alice.waitFor("highlight", `document.querySelectorAll("#log mark").length === 2 && [...document.querySelectorAll("#log mark")].every(m => m.textContent.toLowerCase() === "payment")`, 5*time.Second)
	alice.screenshot("viewer")
	alice.colorScheme("dark")
	if bg := eval[string](alice, `getComputedStyle(document.body).backgroundColor`); bg == "rgb(246, 248, 250)" {
		t.Errorf("dark preference left the light background %s", bg)
	}
	alice.screenshot("viewer-dark")
	alice.colorScheme("light")
	alice.do("regex search", chromedp.Click(chromedp.ID("v-regex")))
	alice.setInput("v-search", `cart/1\d`)
	alice.waitFor("regex highlight", `document.querySelectorAll("#log mark").length === 10`, 5*time.Second)
	alice.do("only matches", chromedp.Click(chromedp.ID("v-only")))
	alice.waitFor("only matching lines", `document.querySelectorAll("#log .line").length === 10`, 5*time.Second)
	alice.do("clear search", chromedp.Click(chromedp.ID("v-only")), chromedp.Click(chromedp.ID("v-regex")))
	alice.setInput("v-search", "")
	alice.waitFor("search cleared", `document.querySelectorAll("#log mark").length === 0 && document.querySelectorAll("#log .line").length === 23`, 5*time.Second)

	// Follow mode: at the bottom while following; scrolling up stops it.
	bulk := make([]string, 300)
	for i := range bulk {
		bulk[i] = fmt.Sprintf(`{"message":"bulk line %d","level":"info"}`, i)
	}
	g.ingest("checkout", "prod", src, bulk...)
	alice.waitFor("bulk lines", `document.querySelectorAll("#log .line").length === 323`, 10*time.Second)
	const atBottom = `(() => { const l = document.getElementById("log"); return l.scrollHeight - l.scrollTop - l.clientHeight < 24 })()`
	alice.waitFor("following at bottom", atBottom, 5*time.Second)
	eval[bool](alice, `(() => { document.getElementById("log").scrollTop = 0; return true })()`)
	alice.waitFor("follow off", `document.getElementById("log").scrollTop === 0`, 5*time.Second)
	g.ingest("checkout", "prod", src, `{"message":"while scrolled up","level":"info"}`)
	alice.waitFor("follow button", `!document.getElementById("v-follow").hidden`, 10*time.Second)
	if top := eval[float64](alice, `document.getElementById("log").scrollTop`); top > 50 {
		t.Errorf("view moved to %v while scrolled up; want it to stay", top)
	}
	alice.do("resume following", chromedp.Click(chromedp.ID("v-follow")))
	alice.waitFor("back at bottom", atBottom+` && document.getElementById("v-follow").hidden`, 5*time.Second)

	// Pause buffers; resume shows what came meanwhile.
	alice.do("pause", chromedp.Click(chromedp.ID("v-pause")))
	g.ingest("checkout", "prod", src, `{"message":"p1"}`, `{"message":"p2"}`, `{"message":"p3"}`)
	alice.waitFor("buffered while paused", `document.getElementById("v-buffered-n").textContent === "3"`, 10*time.Second)
	if n := eval[int](alice, `document.querySelectorAll("#log .line").length`); n != 324 {
		t.Errorf("lines while paused = %d, want 324", n)
	}
	alice.do("resume", chromedp.Click(chromedp.ID("v-pause")))
	alice.waitFor("buffer flushed", `document.querySelectorAll("#log .line").length === 327`, 5*time.Second)

	// A page on another origin cannot open alice's tail with her cookie,
	// though the cookie would go along (same site, other port).
	if got := crossOriginTail(t, alice, g, grantID); got != "refused" {
		t.Errorf("cross-origin page opening the tail: %q, want refused", got)
	}

	// Revoke from the viewer: the stream ends with a clear banner.
	alice.do("revoke",
		chromedp.Click(chromedp.ID("v-revoke")),
		chromedp.SendKeys(chromedp.ID("v-revoke-reason"), "done debugging"),
		chromedp.Click(chromedp.ID("v-revoke-confirm")),
	)
	alice.waitFor("end banner", `!document.getElementById("v-end").hidden`, 10*time.Second)
	if got := alice.text("#v-end"); !strings.Contains(got, "revoked") || !strings.Contains(got, "done debugging") {
		t.Errorf("end banner = %q, want revoked with the reason", got)
	}
	alice.screenshot("viewer-ended")

	// Carol: security.
	carol := newBrowser(t, g, "carol")
	carol.open("/security")
	carol.waitSignedOut()
	if got, want := eval[string](carol, `document.getElementById("signin-link").getAttribute("href")`), "/login?next=%2Fsecurity"; got != want {
		t.Errorf("sign-in link = %q, want %q", got, want)
	}
	carol.signIn("carol", "carol")
	carol.waitFor("first results", `!document.getElementById("results").hidden`, 10*time.Second)
	carol.do("search checkout/prod",
		chromedp.SendKeys(chromedp.ID("q-service"), "checkout"),
		chromedp.SendKeys(chromedp.ID("q-env"), "prod"),
		chromedp.Click(chromedp.ID("q-submit")),
	)
	carol.waitFor("filtered results", `document.querySelector('#results tr[data-action="grant.revoked"]')`, 10*time.Second)
	for _, action := range []string{"request.created", "request.approved", "grant.issued", "stream.opened", "grant.revoked"} {
		if !eval[bool](carol, `!!document.querySelector('#results tr[data-action="`+action+`"]')`) {
			t.Errorf("audit search lacks %s", action)
		}
	}
	if got := eval[string](carol, `document.getElementById("export-csv").getAttribute("href")`); !strings.Contains(got, "format=csv") || !strings.Contains(got, "service=checkout") || !strings.Contains(got, "env=prod") {
		t.Errorf("CSV export link = %q, want the current query", got)
	}
	status := eval[string](carol, `fetch(document.getElementById("export-ndjson").href).then(r => r.status + " " + r.headers.get("content-type"))`)
	if status != "200 application/x-ndjson" {
		t.Errorf("NDJSON export: %q", status)
	}
	carol.waitFor("integrity", `document.getElementById("integrity").textContent.indexOf("loading") < 0`, 10*time.Second)

	// Paging: two per page, older page differs.
	carol.setInput("q-limit", "2")
	carol.do("page size 2", chromedp.Click(chromedp.ID("q-submit")))
	carol.waitFor("page 1", `document.querySelectorAll("#results tbody tr").length === 2 && !document.getElementById("page-next").disabled`, 10*time.Second)
	first := eval[string](carol, `document.querySelector("#results tbody tr").dataset.seq`)
	carol.do("older page", chromedp.Click(chromedp.ID("page-next")))
	carol.waitFor("page 2", `document.getElementById("page-n").textContent === "page 2" && document.querySelector("#results tbody tr").dataset.seq !== `+jsString(first), 10*time.Second)
	carol.setInput("q-limit", "50")
	carol.do("back to 50 per page", chromedp.Click(chromedp.ID("q-submit")))
	carol.waitFor("page 1 again", `document.getElementById("page-n").textContent === "page 1" && document.querySelector('#results a.grant-link')`, 10*time.Second)

	// The refused cross-origin tail is on record.
	carol.setInput("q-service", "")
	carol.setInput("q-env", "")
	carol.setInput("q-action", "auth.failed")
	carol.do("search refusals", chromedp.Click(chromedp.ID("q-submit")))
	carol.waitFor("refusal in the trail", `[...document.querySelectorAll('#results tr[data-action="auth.failed"]')].some(tr => tr.textContent.includes("cross-origin tail refused"))`, 10*time.Second)
	carol.setInput("q-action", "")
	carol.setInput("q-service", "checkout")
	carol.setInput("q-env", "prod")
	carol.do("search checkout/prod again", chromedp.Click(chromedp.ID("q-submit")))
	carol.waitFor("checkout/prod results", `document.querySelector('#results tr[data-action="grant.revoked"]')`, 10*time.Second)

	// The grant's timeline, from a link in the results.
	carol.do("open the timeline", chromedp.Click(chromedp.CSS(`#results a.grant-link[data-grant="`+grantID+`"]`)))
	carol.waitFor("timeline", `document.querySelector('#timeline li[data-action="grant.revoked"]')`, 10*time.Second)
	if !eval[bool](carol, `!!document.querySelector('#timeline li[data-action="stream.closed"]')`) {
		// stream.closed is written as the tail winds down; ask again.
		carol.do("reload the timeline", chromedp.Click(chromedp.ID("t-submit")))
		carol.waitFor("stream.closed in timeline", `document.querySelector('#timeline li[data-action="stream.closed"]')`, 10*time.Second)
	}
	for _, action := range []string{"request.created", "request.approved", "grant.issued", "stream.opened", "grant.revoked", "stream.closed"} {
		if !eval[bool](carol, `!!document.querySelector('#timeline li[data-action="`+action+`"]')`) {
			t.Errorf("timeline lacks %s", action)
		}
	}
	if got := carol.text("#timeline-summary"); !strings.Contains(got, "alice@example.com") || !strings.Contains(got, "done debugging") || !strings.Contains(got, "INC-4242") {
		t.Errorf("timeline summary = %q, want holder, revoke reason and request reason", got)
	}
	// Replay alice's view from the timeline: it shows her lines again,
	// verified against the view's digest, and asks for a reason first.
	carol.do("pick the view to replay", chromedp.Click(chromedp.CSS(`#timeline li[data-action="stream.closed"] button.replay-btn`)))
	carol.waitFor("view id filled", `document.getElementById("r-view").value.startsWith("view_")`, 5*time.Second)
	carol.do("replay without a reason", chromedp.Click(chromedp.ID("r-submit")))
	carol.waitFor("reason asked", `document.getElementById("replay-status").textContent.includes("reason")`, 5*time.Second)
	carol.setInput("r-reason", "INC-4242 what alice saw")
	carol.do("replay", chromedp.Click(chromedp.ID("r-submit")))
	carol.waitFor("replay verified", `document.getElementById("replay-verdict").textContent === "verified"`, 20*time.Second)
	if n := eval[int](carol, `document.querySelectorAll("#replay-log .line").length`); n < 327 {
		t.Errorf("replay shows %d lines; alice saw at least 327", n)
	}
	if !eval[bool](carol, `[...document.querySelectorAll("#replay-log .line .msg")].some(m => m.textContent === "p2")`) {
		t.Error("replay lacks the line p2 alice saw")
	}
	carol.screenshot("security")

	// Admin page: sources for loggate-admins, refused for alice.
	carol.open("/admin")
	carol.waitFor("sources", `document.querySelector("#sources tbody tr")`, 10*time.Second)
	if got := carol.text("#sources"); !strings.Contains(got, "checkout/prod") {
		t.Errorf("sources table = %q, want checkout/prod", got)
	}
	carol.screenshot("admin")
	alice.open("/admin")
	alice.waitFor("refusal", `!document.getElementById("admin-denied").hidden`, 10*time.Second)
	alice.open("/security")
	alice.waitFor("security refusal", `!document.getElementById("sec-denied").hidden && document.getElementById("results").hidden`, 10*time.Second)

	// Phone width: the home page fits without sideways scrolling.
	alice.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	alice.open("/")
	alice.waitFor("home loaded", `document.querySelector("#reqs tr[data-request]")`, 10*time.Second)
	if w := eval[int](alice, `document.documentElement.scrollWidth`); w > 390 {
		wide := eval[string](alice, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 392).slice(0, 8).map(e => e.tagName + "#" + e.id + "." + e.className + " " + Math.round(e.getBoundingClientRect().right)).join("; ")`)
		t.Errorf("home at phone width is %dpx wide, want <= 390; too wide: %s", w, wide)
	}
	alice.screenshot("home-phone")

	// Signing out (a form POST carrying the CSRF token) ends the session.
	carol.do("sign out", chromedp.Click(chromedp.CSS(`#who form.logout button`)))
	carol.waitFor("signed-out page", `location.pathname !== "/admin" && document.readyState === "complete"`, 10*time.Second)
	carol.waitSignedOut()
	carol.open("/security")
	carol.waitSignedOut()

	for _, b := range []*browser{alice, bob, carol} {
		b.checkProblems()
	}
}

// TestBrowserBackfillFloodExpiryBreakGlass covers the rest of the viewer and
// the emergency path: backfill on open, extending the grant from the viewer,
// a flood of lines that the page caps at 5,000 while still showing the
// newest, the end banner when the grant expires by itself, break-glass through its confirmation dialog, and
// security closing the review it opens.
func TestBrowserBackfillFloodExpiryBreakGlass(t *testing.T) {
	requireChromium(t)
	g := startGateway(t)
	staging := g.r.SourceTokens["checkout/staging"]
	if staging == "" {
		t.Fatal("no demo source token for checkout/staging")
	}
	before := make([]string, 30)
	for i := range before {
		before[i] = fmt.Sprintf(`{"message":"before grant line %d","level":"info"}`, i)
	}
	if code := g.ingest("checkout", "staging", staging, before...); code != 200 {
		t.Fatalf("ingest: %d", code)
	}

	alice := newBrowser(t, g, "alice")
	alice.open("/")
	alice.signIn("alice", "alice")
	alice.waitFor("streams", `document.querySelector('#ask-stream option[value="checkout/staging"]')`, 10*time.Second)
	alice.ask("ask for staging", "checkout/staging", "15s", "", "cart totals look wrong")
	alice.openGranted()

	// Backfill: lines from before the grant, oldest first.
	alice.waitFor("backfill", `document.querySelectorAll("#log .line").length === 30`, 10*time.Second)
	if got := alice.text("#log .line .msg"); got != "before grant line 0" {
		t.Errorf("first backfilled line = %q, want the oldest", got)
	}

	// More time from the viewer: staging auto-approves, and the open tail
	// is told the new expiry.
	alice.waitFor("countdown running", `/^\d+s$/.test(document.getElementById("v-countdown").textContent)`, 5*time.Second)
	alice.do("open the extend form", chromedp.Click(chromedp.ID("v-extend")))
	alice.setInput("v-extend-duration", "10s") // added to the current expiry
	alice.setInput("v-extend-reason", "need a little longer")
	alice.do("extend", chromedp.Click(chromedp.ID("v-extend-confirm")))
	alice.waitFor("extended notice", `[...document.querySelectorAll("#v-notices li")].some(li => li.textContent.includes("extended"))`, 10*time.Second)
	alice.waitFor("longer countdown", `parseInt(document.getElementById("v-countdown").textContent, 10) > 15`, 5*time.Second)

	// A flood at 2,000 lines a second (under the hub's per-viewer sampling
	// threshold): the DOM stays capped and the newest line is shown.
	const flood, per = 6000, 2000
	for start := 0; start < flood; start += per {
		if start > 0 {
			time.Sleep(time.Second)
		}
		batch := make([]string, per)
		for i := range batch {
			batch[i] = fmt.Sprintf(`{"message":"flood %d","level":"debug"}`, start+i)
		}
		if code := g.ingest("checkout", "staging", staging, batch...); code != 200 {
			t.Fatalf("ingest flood: %d", code)
		}
	}
	alice.waitFor("newest flood line", fmt.Sprintf(`(document.querySelector("#log .line:last-child .msg") || {}).textContent === "flood %d"`, flood-1), 15*time.Second)
	if n := eval[int](alice, `document.querySelectorAll("#log .line").length`); n != 5000 {
		t.Errorf("DOM holds %d lines after a flood, want the cap of 5000", n)
	}
	t.Logf("flood: received %s, dropped %s", alice.text("#v-count"), alice.text("#v-dropped"))

	// The grant runs out: the page says so without being asked.
	alice.waitFor("expiry banner", `!document.getElementById("v-end").hidden`, 30*time.Second)
	if got := alice.text("#v-end"); !strings.Contains(got, "expired") {
		t.Errorf("end banner = %q, want expired", got)
	}
	if got := alice.text("#v-countdown"); got != "expired" {
		t.Errorf("countdown = %q, want expired", got)
	}

	// Break-glass: bob (oncall) goes through the confirmation dialog.
	bob := newBrowser(t, g, "bob")
	bob.open("/inbox")
	bob.signIn("bob", "bob")

	// A request made and withdrawn elsewhere (the CLI) comes and goes in
	// the open inbox.
	aliceToken := g.token("alice")
	var req requestJSON
	if code := g.call("POST", "/api/v1/requests", aliceToken, map[string]any{"service": "checkout", "env": "prod",
		"duration": "5m", "reason": "INC-5 from the CLI"}, &req); code != http.StatusCreated || req.State != "pending" {
		t.Fatalf("create request: %d %+v", code, req)
	}
	bob.waitFor("request in inbox", `document.querySelector('#inbox [data-request="`+req.ID+`"]')`, 10*time.Second)
	if code := g.call("POST", "/api/v1/requests/"+req.ID+"/cancel", aliceToken, nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	bob.waitFor("cancelled request gone", `!document.querySelector('#inbox [data-request="`+req.ID+`"]') && !document.getElementById("inbox-empty").hidden`, 10*time.Second)

	bob.open("/")
	bob.waitFor("streams", `document.querySelector('#ask-stream option[value="checkout/prod"]')`, 10*time.Second)
	bob.do("choose break-glass",
		chromedp.SetValue(chromedp.ID("ask-stream"), "checkout/prod"),
		chromedp.SetValue(chromedp.ID("ask-duration"), "10m"),
		chromedp.Click(chromedp.ID("ask-breakglass")),
		chromedp.Click(chromedp.ID("ask-submit")),
	)
	bob.waitFor("dialog", `document.getElementById("bg-dialog").open`, 5*time.Second)
	bob.do("cancel", chromedp.Click(chromedp.ID("bg-cancel")))
	bob.waitFor("cancelled", `!document.getElementById("bg-dialog").open && document.getElementById("ask-result").textContent.includes("nothing was requested")`, 5*time.Second)
	bob.do("try again", chromedp.Click(chromedp.ID("ask-submit")))
	bob.waitFor("dialog again", `document.getElementById("bg-dialog").open`, 5*time.Second)
	bob.setInput("bg-reason", "down")
	bob.do("confirm with too short a reason", chromedp.Click(chromedp.ID("bg-confirm")))
	bob.waitFor("reason refused", `document.getElementById("bg-dialog").open && document.getElementById("bg-error").textContent !== ""`, 5*time.Second)
	bob.setInput("bg-reason", "checkout is down for everyone, paging did not help")
	bob.screenshot("breakglass")
	bob.do("confirm", chromedp.Click(chromedp.ID("bg-confirm")))
	bob.waitFor("granted at once", `document.getElementById("ask-result").textContent.includes("Access granted")`, 10*time.Second)
	bob.waitFor("break-glass grant", `document.querySelector("#grants [data-grant] .state-breakglass")`, 10*time.Second)

	// Security sees the open review and closes it.
	carol := newBrowser(t, g, "carol")
	carol.open("/security")
	carol.signIn("carol", "carol")
	carol.waitFor("open review", `document.querySelector("#reviews [data-review]")`, 10*time.Second)
	if got := carol.text("#reviews"); !strings.Contains(got, "checkout is down for everyone") || !strings.Contains(got, "checkout/prod") {
		t.Errorf("review card = %q", got)
	}
	carol.screenshot("security-review")
	carol.do("close the review",
		chromedp.SendKeys(chromedp.CSS(`#reviews [data-review] input`), "justified: outage INC-77"),
		chromedp.Click(chromedp.CSS(`#reviews [data-review] button[type="submit"]`)),
	)
	carol.waitFor("no open review", `!document.querySelector("#reviews [data-review]") && !document.getElementById("reviews-empty").hidden`, 10*time.Second)

	for _, b := range []*browser{alice, bob, carol} {
		b.checkProblems()
	}
}

// crossOriginTail opens, in a new tab of b's browser, a page served from
// another origin whose script tries to tail the grant, and returns what
// happened: "refused", or "message: ..." if the gateway answered.
func crossOriginTail(t *testing.T, b *browser, g *gatewayT, grantID string) string {
	t.Helper()
	ws := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + grantID + "/tail"
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>elsewhere</title><script>
window.result = "pending";
const ws = new WebSocket(%s);
ws.onmessage = (e) => { window.result = "message: " + String(e.data).slice(0, 60); };
ws.onclose = () => { if (window.result === "pending") window.result = "refused"; };
</script>`, jsString(ws))
	}))
	defer evil.Close()
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	ctx, cancelRun := context.WithTimeout(tab, 20*time.Second)
	defer cancelRun()
	if err := chromedp.Do(ctx, chromedp.Navigate(evil.URL)); err != nil {
		t.Fatalf("open the other origin's page: %v", err)
	}
	var got string
	var err error
	if !within(10*time.Second, 50*time.Millisecond, func() bool {
		got, err = chromedp.Run(ctx, chromedp.Evaluate[string](`window.result`))
		return err == nil && got != "pending"
	}) {
		return fmt.Sprintf("no outcome (%v)", err)
	}
	return got
}

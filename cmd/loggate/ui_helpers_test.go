package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// requireChromium skips (loudly) when no browser is installed, except in CI,
// where a missing browser must fail the run rather than hide the UI tests.
func requireChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("\n\n*** BROWSER TESTS NOT RUN: %s not found (%v). Install it with `apt-get install -y chromium`. ***\n", chromiumPath, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// browser is one headless Chromium with its own profile: its own cookies, so
// two browsers are two people.
type browser struct {
	t    *testing.T
	name string
	base string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // script exceptions, CSP violations, JS dialogs
}

func newBrowser(t *testing.T, g *gatewayT, name string) *browser {
	t.Helper()
	requireChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, name: name, base: g.url, ctx: ctx}
	// The first run starts the browser; it must not carry a timeout, which
	// would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: start chromium: %v", name, err)
	}
	b.watch()
	return b
}

// watch records what must never happen on our pages: an uncaught script
// error, a console error from our code, a CSP violation, or a JavaScript
// dialog (an alert means injected script ran). Dialogs are dismissed so the
// page does not hang.
func (b *browser) watch() {
	msgs := chromedp.Console(b.ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch {
			case m.IsException(), m.Type == chromedp.ConsoleError && m.Source == "":
				b.problem("script error: %s", m.Text)
			case m.Source == "security" || strings.Contains(m.Text, "Content Security Policy"):
				b.problem("CSP violation: %s", m.Text)
			}
		}
	}()
	dialogs := chromedp.Events(b.ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.problem("JavaScript %s dialog opened: %q", ev.Type, ev.Message)
			_, _ = chromedp.Run(b.ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
				return err
			}))
		}
	}()
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// checkProblems fails the test with whatever watch saw.
func (b *browser) checkProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("%s's browser: %s", b.name, p)
	}
	b.problems = nil
}

// do runs steps with a timeout, failing the test with what was being done.
// fillForm waits until ready (a JavaScript predicate) holds on a fully loaded
// document and then runs steps on it. The page it fills has just been
// reached by a navigation, and chromedp learns of a replaced document from
// events that may arrive after the predicate is already true on the new one:
// a step then names a node of the old document and Chrome answers "Could not
// find node with given id". That is the one error retried, from the wait,
// because the form it names is a fresh one with nothing typed into it yet.
func (b *browser) fillForm(what, ready string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	for attempt := 1; ; attempt++ {
		b.waitFor(what, `document.readyState === "complete" && (`+ready+`)`, timeout)
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		err := chromedp.Do(ctx, steps...)
		cancel()
		if err == nil {
			return
		}
		if attempt == 3 || !strings.Contains(err.Error(), "Could not find node with given id") {
			b.t.Fatalf("%s: %s: %v", b.name, what, err)
		}
		b.t.Logf("%s: %s: the document was replaced under the step (%v); filling the new one", b.name, what, err)
	}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %s: %v", b.name, what, err)
	}
}

// ask fills in the request form (level "" leaves its choice alone) and
// submits it.
func (b *browser) ask(what, stream, duration, level, reason string) {
	b.t.Helper()
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.SetValue(chromedp.ID("ask-stream"), stream),
		chromedp.SetValue(chromedp.ID("ask-duration"), duration),
	}
	if level != "" {
		steps = append(steps, chromedp.SetValue(chromedp.ID("ask-level"), level))
	}
	b.do(what, append(steps, chromedp.SendKeys(chromedp.ID("ask-reason"), reason), chromedp.Click(chromedp.ID("ask-submit")))...)
}

// openGranted waits for the form to say access was granted at once, then
// opens the viewer from its link.
func (b *browser) openGranted() {
	b.t.Helper()
	b.waitFor("auto-approved", `document.getElementById("ask-result").textContent.includes("Access granted")`, 10*time.Second)
	b.do("open the viewer", chromedp.Click(chromedp.CSS(`#ask-result a`)))
}

// eval evaluates a JavaScript expression and returns its value.
// A promise is awaited.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluate %s: %v", b.name, expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is truthy. Evaluation
// errors (a navigation replacing the document) count as "not yet".
func (b *browser) waitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	var lastErr error
	var holds bool
	within(timeout, 50*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		lastErr, holds = err, err == nil && ok
		return holds || b.ctx.Err() != nil
	})
	if !holds {
		b.t.Fatalf("%s: waiting for %s (%s): not true after %v (last error %v)\npage text:\n%s", b.name, what, expr, timeout, lastErr, b.pageText())
	}
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText.slice(0, 3000) : ""`))
	return s
}

func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {textContent: ""}).textContent`, sel))
}

// signIn follows the page's "Sign in" link through the development
// provider's login form and back to the page.
func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.waitSignedOut()
	b.do("follow the sign-in link", chromedp.Click(chromedp.ID("signin-link")))
	b.fillForm("the provider's login form", `!!document.getElementById("username") && !!document.getElementById("password")`, 10*time.Second,
		chromedp.SendKeys(chromedp.ID("username"), user),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Submit(chromedp.ID("password")),
	)
	b.waitFor("signed in", `!!document.getElementById("me-name")`, 15*time.Second)
}

// waitSignedOut waits until the page has asked the API who is signed in and
// offered the sign-in link.
func (b *browser) waitSignedOut() {
	b.t.Helper()
	b.waitFor("the sign-in offer", `!document.getElementById("signin").hidden && document.getElementById("signin-link").getAttribute("href") !== "/login"`, 10*time.Second)
}

// screenshot writes docs/screenshots/<name>.png when
// LOGGATE_UPDATE_SCREENSHOTS=1, so ordinary runs leave the tree clean.
func (b *browser) screenshot(name string) {
	b.t.Helper()
	if os.Getenv("LOGGATE_UPDATE_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("%s: screenshot %s: %v", b.name, name, err)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), img, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// setInput sets a form control's value as typing would, firing input and
// change events.
func (b *browser) setInput(id, value string) {
	b.t.Helper()
	eval[bool](b, `(() => { const e = document.getElementById(`+jsString(id)+`); e.value = `+jsString(value)+
		`; e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })()`)
}

// colorScheme emulates the system's light or dark preference.
func (b *browser) colorScheme(scheme string) {
	b.t.Helper()
	b.do("prefer "+scheme, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
		return err
	}))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

package main

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestUIDebugLevelRequest: in the browser, asking for checkout/staging with
// level debug and opening the viewer shows the demo service's debug lines.
func TestUIDebugLevelRequest(t *testing.T) {
	requireChromium(t)
	g := startGateway(t, "--dev-demo-logs=true")
	alice := newBrowser(t, g, "alice")
	alice.open("/")
	alice.signIn("alice", "alice")
	alice.waitFor("streams", `document.querySelector('#ask-stream option[value="checkout/staging"]')`, 10*time.Second)
	alice.do("ask for staging with debug",
		chromedp.SetValue(chromedp.ID("ask-stream"), "checkout/staging"),
		chromedp.SetValue(chromedp.ID("ask-duration"), "5m"),
		chromedp.SetValue(chromedp.ID("ask-level"), "debug"),
		chromedp.SendKeys(chromedp.ID("ask-reason"), "cart totals look wrong"),
		chromedp.Click(chromedp.ID("ask-submit")),
	)
	alice.waitFor("auto-approved", `document.getElementById("ask-result").textContent.includes("Access granted")`, 10*time.Second)
	alice.do("open the viewer", chromedp.Click(chromedp.CSS(`#ask-result a`)))
	alice.waitFor("a debug line", `document.querySelector("#log .line.lvl-debug")`, 15*time.Second)
	alice.screenshot("debug-on-demand")
}

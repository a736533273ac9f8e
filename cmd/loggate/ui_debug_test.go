package main

import (
	"testing"
	"time"
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
	alice.ask("ask for staging with debug", "checkout/staging", "5m", "debug", "cart totals look wrong")
	alice.openGranted()
	alice.waitFor("a debug line", `document.querySelector("#log .line.lvl-debug")`, 15*time.Second)
	alice.screenshot("debug-on-demand")
}

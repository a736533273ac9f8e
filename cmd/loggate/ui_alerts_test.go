package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserAlertToAccess: a rule fires on ingested lines; security sees
// it on the Alerts page; the on-call engineer follows its link, finds the
// request form filled in with the stream and the alert as the reason, and
// gets access, the request naming the alert.
func TestBrowserAlertToAccess(t *testing.T) {
	requireChromium(t)
	rules := filepath.Join(t.TempDir(), "alerts.yaml")
	if err := os.WriteFile(rules, []byte("- {name: checkout-payment-errors, service: checkout, env: staging, level: error, message: payment failed, threshold: 2, window: 1m, sample: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, "--alert-rules", rules)
	line := `{"level":"error","message":"payment failed <b id=injected>x</b>"}`
	if code := g.ingest("checkout", "staging", g.r.SourceTokens["checkout/staging"], line, line); code != 200 {
		t.Fatalf("ingest: %d", code)
	}

	carol := newBrowser(t, g, "carol")
	carol.open("/alerts")
	carol.signIn("carol", "carol")
	carol.waitFor("firing alert", `document.querySelector("#firing [data-alert]")`, 15*time.Second)
	card := carol.text("#firing [data-alert]")
	for _, want := range []string{"checkout-payment-errors", "checkout/staging", "firing"} {
		if !strings.Contains(card, want) {
			t.Errorf("alert card lacks %q: %q", want, card)
		}
	}
	// The staging alert keeps its sample (policy allows it there), shown
	// as text: the markup in the line is not markup on the page.
	if got := carol.text("#firing [data-alert] .alert-sample"); !strings.Contains(got, "payment failed <b id=injected>") {
		t.Errorf("sample = %q, want the line as text", got)
	}
	if eval[bool](carol, `document.getElementById("injected") !== null`) {
		t.Error("the sample line became markup on the Alerts page")
	}
	carol.screenshot("alerts")

	link := eval[string](carol, `document.querySelector("#firing [data-alert] a").href`)
	u, err := url.Parse(link)
	if err != nil || u.Query().Get("alert_id") == "" {
		t.Fatalf("alert link = %q", link)
	}
	alertID := u.Query().Get("alert_id")

	alice := newBrowser(t, g, "alice")
	alice.open(strings.TrimPrefix(link, g.url))
	alice.signIn("alice", "alice")
	alice.waitFor("form filled from the alert", `document.getElementById("ask-stream").value === "checkout/staging" && document.getElementById("ask-reason").value.includes("checkout-payment-errors")`, 10*time.Second)
	alice.do("ask", chromedp.Click(chromedp.ID("ask-submit")))
	alice.waitFor("access granted", `document.getElementById("ask-result").textContent.includes("Access granted")`, 10*time.Second)

	var reqs struct {
		Items []struct {
			AlertID string `json:"alert_id"`
		} `json:"items"`
	}
	if code := g.call("GET", "/api/v1/requests", g.token("alice"), nil, &reqs); code != 200 || len(reqs.Items) != 1 || reqs.Items[0].AlertID != alertID {
		t.Errorf("alice's requests = %d %+v, want one naming %s", code, reqs.Items, alertID)
	}
	// An admin edits the rules on the Admin page: a bad file is refused
	// with the rule and field named, a good one is saved.
	carol.open("/admin")
	carol.waitFor("rules editor", `document.getElementById("rules-source").value.includes("checkout-payment-errors")`, 10*time.Second)
	carol.setInput("rules-source", "- {name: broken, message: '(', window: 1m}\n")
	carol.do("save bad rules", chromedp.Click(chromedp.ID("rules-save")))
	carol.waitFor("refusal", `document.getElementById("rules-result").textContent.includes("Not saved")`, 10*time.Second)
	if got := carol.text("#rules-result"); !strings.Contains(got, `rule "broken"`) || !strings.Contains(got, "field message") {
		t.Errorf("refusal = %q, want the rule and field", got)
	}
	good := "- {name: checkout-payment-errors, service: checkout, env: staging, level: error, message: payment failed, threshold: 2, window: 1m}\n- {name: slow, message: timeout, window: 5m}\n"
	carol.setInput("rules-source", good)
	carol.do("save good rules", chromedp.Click(chromedp.ID("rules-save")))
	carol.waitFor("saved", `document.getElementById("rules-result").textContent.includes("Saved: 2 rules")`, 10*time.Second)
	if b, _ := os.ReadFile(rules); string(b) != good {
		t.Errorf("rules file = %q, want the saved rules", b)
	}
	carol.screenshot("admin-rules")
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserAdminEndsSession: carol (loggate-admins) sees everyone's
// browser sessions on the Admin page and ends alice's; alice's browser is
// signed out at its next request.
func TestBrowserAdminEndsSession(t *testing.T) {
	requireChromium(t)
	g := startGateway(t)
	alice := newBrowser(t, g, "alice")
	carol := newBrowser(t, g, "carol")
	alice.open("/")
	alice.signIn("alice", "alice")
	carol.open("/admin")
	carol.signIn("carol", "carol")
	carol.waitFor("the sessions table", `document.querySelectorAll("#sessions tbody tr").length >= 2`, 10*time.Second)
	if got := carol.text("#sessions"); !strings.Contains(got, "alice") || !strings.Contains(got, "End (this browser)") {
		t.Errorf("sessions table = %q, want alice's session and carol's own marked", got)
	}
	id := eval[string](carol, `[...document.querySelectorAll("#sessions tbody tr")].find(r => r.querySelector("th").textContent.includes("alice")).dataset.session`)
	carol.do("end alice's session", chromedp.Click(chromedp.CSS(`#sessions tr[data-session="`+id+`"] button`)))
	carol.waitFor("alice's row gone", `![...document.querySelectorAll("#sessions tbody th")].some(th => th.textContent.includes("alice"))`, 10*time.Second)
	if got := eval[int](alice, `fetch("/api/v1/me").then(r => r.status)`); got != 401 {
		t.Errorf("alice's browser after carol ended her session: /api/v1/me = %d, want 401", got)
	}
	for _, b := range []*browser{alice, carol} {
		b.checkProblems()
	}
}

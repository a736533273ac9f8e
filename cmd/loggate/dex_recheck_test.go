package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDexIdentityRecheckEndsViews: alice and bob each watch staging in a
// browser-opened tail. The directory changes at Dex: alice leaves
// engineers, bob's account is replaced. Within one re-check interval alice's refreshed
// token lacks the group the policy requires and bob's refresh is refused:
// both grants are revoked with reason identity and both tails end (4002).
// Before the change, re-checks keep the views open.
func TestDexIdentityRecheckEndsViews(t *testing.T) {
	g := startDexGateway(t, dexOptions{SQLite: true}, "--identity-recheck-interval", "500ms")
	carol := g.dex.cliToken("carol")
	source := map[string]any{"name": "checkout", "streams": []map[string]string{{"service": "checkout", "env": "staging"}}}
	if code := g.call("POST", "/api/v1/sources", carol, source, nil); code != http.StatusCreated {
		t.Fatalf("carol creates a source: %d", code)
	}
	watch := func(user string) (*tailConn, string) {
		t.Helper()
		c := newWebClient(t, g.url, nil)
		g.dex.loginAtDex(c, user)
		_, me := c.me()
		grant := c.stagingGrant(user, "30m", "recheck test", http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {g.url}})
		return sessionTail(t, g.gatewayT, c, grant), grant
	}
	aliceTail, aliceGrant := watch("alice")
	bobTail, bobGrant := watch("bob")

	// Re-checks happen and keep the views: wait for a refresh of each at Dex.
	var seen map[string]bool
	if !within(20*time.Second, 100*time.Millisecond, func() bool {
		evs, _ := g.auditAs(carol, "auth.refresh")
		seen = map[string]bool{}
		for _, e := range evs {
			seen[e.Actor["email"].(string)] = true
		}
		return seen["alice@example.com"] && seen["bob@example.com"]
	}) {
		t.Fatalf("no re-check refresh for alice and bob within 20s: %v", seen)
	}
	for _, id := range []string{aliceGrant, bobGrant} {
		var gr struct {
			State string `json:"state"`
		}
		if code := g.call("GET", "/api/v1/grants/"+id, carol, nil, &gr); code != http.StatusOK || gr.State != "active" {
			t.Fatalf("grant %s after a passing re-check: %d %q, want active", id, code, gr.State)
		}
	}

	var users []dexUser
	for _, u := range dexUsers() {
		switch u.Username {
		case "alice":
			u.Groups = nil // left engineers
		case "bob":
			// Removed from the directory; a new account took his email.
			// (Dropping him outright makes Dex v2.45 on SQLite block the
			// refresh on a database lock instead of refusing it.)
			u.UserID = "uid-bob-replacement"
		}
		users = append(users, u)
	}
	g.dex.restart(users)

	for name, tc := range map[string]*tailConn{"alice": aliceTail, "bob": bobTail} {
		_, end, code := tc.next(0, 20*time.Second)
		msg, _ := end["message"].(string)
		if code != 4002 || end["reason"] != "revoked" || !strings.Contains(msg, "identity") {
			t.Errorf("%s's tail after the directory change: close %d, end %v; want 4002 revoked for identity", name, code, end)
		}
	}
	revoked, _ := g.auditAs(carol, "grant.revoked")
	why := map[string]string{}
	for _, e := range revoked {
		if e.Reason == "identity" {
			gid, _ := e.Details["holder"].(string)
			why[gid], _ = e.Details["detail"].(string)
		}
	}
	if len(why) != 2 {
		t.Fatalf("grant.revoked with reason identity: %v, want one for alice and one for bob", why)
	}
	for holder, detail := range why {
		switch {
		case strings.Contains(holder, "dex") && strings.Contains(detail, "not a member of engineers"):
		case strings.Contains(detail, "refused to refresh"):
		default:
			t.Errorf("grant.revoked for %s: detail %q, want the missing group or the refused refresh", holder, detail)
		}
	}
}

// TestDexSigningKeyRotation: Dex rotates its signing key while alice has a
// browser session open; a token signed with the new key (a key id loggate
// has not seen) is accepted after loggate fetches Dex's keys again, the
// session carries on, and the old token keeps working.
func TestDexSigningKeyRotation(t *testing.T) {
	t.Parallel() // waits up to Dex's 30-second rotation check
	g := startDexGateway(t, dexOptions{SigningKeys: "1s"})
	c := newWebClient(t, g.url, nil)
	g.dex.loginAtDex(c, "alice")
	before := g.dex.cliToken("alice")
	if status, body := g.bearerStatus(before, nil); status != http.StatusOK {
		t.Fatalf("token before the rotation: %d %s", status, body)
	}
	kid := currentKid(t, before)
	// Dex checks for rotation every 30 seconds.
	var after string
	if !within(90*time.Second, 500*time.Millisecond, func() bool {
		after = g.dex.cliToken("alice")
		return currentKid(t, after) != kid
	}) {
		t.Fatalf("Dex did not rotate its signing key within 90s (kid still %s)", kid)
	}
	if status, body := g.bearerStatus(after, nil); status != http.StatusOK {
		t.Errorf("token signed with Dex's new key: %d %s, want 200", status, body)
	}
	if status, body := g.bearerStatus(before, nil); status != http.StatusOK {
		t.Errorf("token signed before the rotation: %d %s, want 200 while Dex still publishes its key", status, body)
	}
	if status, _ := c.me(); status != http.StatusOK {
		t.Errorf("browser session across the rotation: /me = %d, want 200", status)
	}
}

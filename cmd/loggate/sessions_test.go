package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/cluster/redistest"
)

// sessionsJSON is GET /api/v1/sessions.
type sessionsJSON struct {
	Items []struct {
		ID      string `json:"id"`
		UserID  string `json:"user_id"`
		Current bool   `json:"current"`
	} `json:"items"`
}

func (c *webClient) sessions() sessionsJSON {
	c.t.Helper()
	resp, body := c.do("GET", "/api/v1/sessions", nil, nil)
	var s sessionsJSON
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
		c.t.Fatalf("GET /api/v1/sessions: %d %s", resp.StatusCode, body)
	}
	return s
}

// stagingGrant asks, as the browser session (header carries its CSRF
// token and origin), for checkout/staging (auto-approved) and returns the
// grant's id; who names the asker in a failure.
func (c *webClient) stagingGrant(who, duration, reason string, header http.Header) string {
	c.t.Helper()
	resp, body := c.postJSON("/api/v1/requests",
		map[string]any{"service": "checkout", "env": "staging", "duration": duration, "reason": reason}, header)
	var req struct {
		Grant struct {
			ID string `json:"id"`
		} `json:"grant"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal([]byte(body), &req) != nil || req.Grant.ID == "" {
		c.t.Fatalf("%s asks for staging: %d %s", who, resp.StatusCode, body)
	}
	return req.Grant.ID
}

// sessionTail opens a tail of grant with the browser session's cookie.
func sessionTail(t *testing.T, g *gatewayT, c *webClient, grant string) *tailConn {
	t.Helper()
	d := websocket.Dialer{Jar: c.http.Jar, HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(g.url, "http")+"/api/v1/grants/"+grant+"/tail", http.Header{"Origin": {g.url}})
	if err != nil {
		code := 0
		if resp != nil {
			code = resp.StatusCode
		}
		t.Fatalf("tail with the session cookie: %v (status %d)", err, code)
	}
	t.Cleanup(func() { conn.Close() })
	var first map[string]any
	if err := conn.ReadJSON(&first); err != nil || first["type"] != "subscribed" {
		t.Fatalf("first tail message = %v, %v; want subscribed", first, err)
	}
	return &tailConn{t: t, conn: conn}
}

// TestSessionsListAndEndAcrossReplicas: on two replicas sharing Redis, a
// person sees only their own browser sessions; someone else's session id
// is 404 exactly like an unknown one; an admin lists all and ends one on
// replica A, which closes the tail that session opened on replica B at
// once (close code 4007) and refuses the session's next request on both.
// The person ending their own other session is audited as by: self.
func TestSessionsListAndEndAcrossReplicas(t *testing.T) {
	url, _ := redistest.FromEnvOrStart(t)
	a, b := startReplicas(t, url)
	carol := a.token("carol")

	laptop, phone := newWebClient(t, a.url, nil), newWebClient(t, a.url, nil)
	laptop.login("/", "alice")
	phone.login("/", "alice")
	bobWeb := newWebClient(t, a.url, nil)
	bobWeb.login("/", "bob")

	mine := laptop.sessions()
	if len(mine.Items) != 2 {
		t.Fatalf("alice lists %d sessions, want her 2: %+v", len(mine.Items), mine)
	}
	var laptopID, phoneID string
	for _, s := range mine.Items {
		if !strings.HasSuffix(s.UserID, "|dev-alice") {
			t.Errorf("alice sees a session of %s", s.UserID)
		}
		if s.Current {
			laptopID = s.ID
		} else {
			phoneID = s.ID
		}
	}
	if laptopID == "" || phoneID == "" {
		t.Fatalf("want exactly one current session: %+v", mine)
	}
	bobID := bobWeb.sessions().Items[0].ID

	// Someone else's id and an unknown id answer the same 404.
	_, me := laptop.me()
	csrf := http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {a.url}}
	r1, other := laptop.do("DELETE", "/api/v1/sessions/"+bobID, nil, csrf)
	r2, unknown := laptop.do("DELETE", "/api/v1/sessions/"+strings.Repeat("0", 32), nil, csrf)
	if r1.StatusCode != http.StatusNotFound || r2.StatusCode != http.StatusNotFound || other != unknown {
		t.Errorf("alice ends bob's session: %d %s; an unknown one: %d %s; want the same 404", r1.StatusCode, other, r2.StatusCode, unknown)
	}
	if status, _ := bobWeb.me(); status != http.StatusOK {
		t.Fatalf("bob's session after alice's attempt: %d, want 200", status)
	}

	// alice's laptop tails staging through replica B with its cookie.
	grant := laptop.stagingGrant("alice", "10m", "sessions test", csrf)
	onB := newWebClient(t, b.url, nil)
	onB.http.Jar = laptop.http.Jar // the same browser, routed to the other replica
	tc := sessionTail(t, b, onB, grant)

	var all sessionsJSON
	if code := a.call("GET", "/api/v1/sessions", carol, nil, &all); code != http.StatusOK || len(all.Items) != 3 {
		t.Fatalf("carol (admin) lists: %d, %d sessions, want 3", code, len(all.Items))
	}
	if code := a.call("DELETE", "/api/v1/sessions/"+laptopID, carol, nil, nil); code != http.StatusNoContent {
		t.Fatalf("carol ends alice's laptop session: %d, want 204", code)
	}
	_, end, code := tc.next(0, 10*time.Second)
	if code != 4007 || end == nil || end["reason"] != "session_ended" {
		t.Errorf("laptop's tail on B: close code %d, end %v; want 4007 and reason session_ended", code, end)
	}
	for name, c := range map[string]*webClient{"A": laptop, "B": onB} {
		if status, _ := c.me(); status != http.StatusUnauthorized {
			t.Errorf("ended session on replica %s: /me = %d, want 401", name, status)
		}
	}
	if status, _ := phone.me(); status != http.StatusOK {
		t.Errorf("alice's phone after the laptop was ended: %d, want 200", status)
	}

	// alice ends her own phone session from the phone (a fresh login first).
	laptop.login("/", "alice")
	_, me = laptop.me()
	csrf = http.Header{"X-Csrf-Token": {me.CSRFToken}, "Origin": {a.url}}
	if r, b := laptop.do("DELETE", "/api/v1/sessions/"+phoneID, nil, csrf); r.StatusCode != http.StatusNoContent {
		t.Errorf("alice ends her phone session: %d %s, want 204", r.StatusCode, b)
	}
	if status, _ := phone.me(); status != http.StatusUnauthorized {
		t.Errorf("phone after alice ended it: %d, want 401", status)
	}

	evs, _ := a.auditAs(carol, "auth.logout")
	by := map[string]string{}
	for _, e := range evs {
		if id, _ := e.Details["session_id"].(string); id != "" {
			by[id], _ = e.Details["by"].(string)
		}
	}
	if by[laptopID] != "admin" || by[phoneID] != "self" {
		t.Errorf("auth.logout by = %v, want laptop by admin and phone by self", by)
	}
}

package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWalkingSkeleton drives the whole path over real HTTP and a real
// WebSocket: OIDC tokens from the development provider, ingest, a prod
// request by alice approved by bob, the live tail with redaction, expiry
// closing the stream, and the audit trail as carol sees it.
func TestWalkingSkeleton(t *testing.T) {
	g := startGateway(t)
	alice, bob, carol := g.token("alice"), g.token("bob"), g.token("carol")
	src := g.r.SourceTokens["checkout/prod"]
	if src == "" {
		t.Fatal("no demo source token for checkout/prod")
	}

	var me struct {
		Groups []string `json:"groups"`
		Email  string   `json:"email"`
	}
	if code := g.call("GET", "/api/v1/me", bob, nil, &me); code != 200 || !contains(me.Groups, "sre-leads") {
		t.Fatalf("GET /me as bob: %d %+v", code, me)
	}

	// Alice asks for prod: one approval from sre-leads.
	var req requestJSON
	code := g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "prod",
		"duration": "3s", "reason": "INC-1234 checkout errors"}, &req)
	if code != http.StatusCreated || req.State != "pending" || req.Grant != nil {
		t.Fatalf("create prod request: status %d, %+v; want 201 pending without grant", code, req)
	}
	if req.Decision.ApprovalsRequired != 1 || !contains(req.Decision.ApproverGroups, "sre-leads") {
		t.Errorf("decision = %+v, want 1 approval from sre-leads", req.Decision)
	}

	// She may not approve her own request; bob sees it in his inbox.
	if code := g.call("POST", "/api/v1/requests/"+req.ID+"/approve", alice, map[string]string{"comment": "me"}, nil); code != http.StatusForbidden {
		t.Errorf("self-approval: status %d, want 403", code)
	}
	var inbox struct {
		Items []requestJSON `json:"items"`
	}
	if code := g.call("GET", "/api/v1/requests?state=pending", bob, nil, &inbox); code != 200 || len(inbox.Items) != 1 || inbox.Items[0].ID != req.ID {
		t.Fatalf("bob's pending inbox: %d %+v, want the one request", code, inbox)
	}

	var approved requestJSON
	if code := g.call("POST", "/api/v1/requests/"+req.ID+"/approve", bob, map[string]string{"comment": "go"}, &approved); code != 200 || approved.State != "approved" || approved.Grant == nil {
		t.Fatalf("approve as bob: %d %+v", code, approved)
	}
	if code := g.call("POST", "/api/v1/requests/"+req.ID+"/approve", bob, map[string]string{"comment": "again"}, nil); code != http.StatusConflict {
		t.Errorf("second approval: status %d, want 409", code)
	}
	var got requestJSON
	if code := g.call("GET", "/api/v1/requests/"+req.ID, alice, nil, &got); code != 200 || got.Grant == nil || got.Grant.ID != approved.Grant.ID {
		t.Fatalf("alice reads her request: %d %+v", code, got)
	}
	grant := got.Grant
	if grant.Service != "checkout" || grant.Env != "prod" || grant.ExpiresAt.IsZero() {
		t.Errorf("grant = %+v", grant)
	}

	// Someone else's grant is refused before the upgrade.
	wsURL := "ws" + strings.TrimPrefix(g.url, "http") + "/api/v1/grants/" + grant.ID + "/tail"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + bob}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("bob tailing alice's grant: err %v resp %v, want 403", err, resp)
	}

	conn, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + alice}})
	if err != nil {
		t.Fatalf("tail: %v", err)
	}
	defer conn.Close()
	var first map[string]any
	if err := conn.ReadJSON(&first); err != nil || first["type"] != "subscribed" {
		t.Fatalf("first message = %v, %v; want subscribed", first, err)
	}
	if code := g.ingest("checkout", "prod", src,
		`{"message":"payment failed","level":"error","order":"ord_1"}`,
		`{"message":"calling payments with Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123456789","level":"debug"}`); code != 200 {
		t.Fatalf("ingest: status %d", code)
	}
	var entries []map[string]any
	var end map[string]any
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	for end == nil {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("reading tail before end: %v (entries so far %d)", err, len(entries))
		}
		var m struct {
			Type    string           `json:"type"`
			Entries []map[string]any `json:"entries"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("tail message %q: %v", data, err)
		}
		switch m.Type {
		case "entries":
			entries = append(entries, m.Entries...)
		case "end":
			json.Unmarshal(data, &end)
		}
	}
	if len(entries) != 2 {
		t.Fatalf("received %d entries, want 2: %v", len(entries), entries)
	}
	for _, k := range []string{"seq", "time", "level", "message", "service", "env"} {
		if _, ok := entries[0][k]; !ok {
			t.Errorf("entry lacks %q: %v", k, entries[0])
		}
	}
	if entries[0]["message"] != "payment failed" || entries[0]["service"] != "checkout" || entries[0]["env"] != "prod" {
		t.Errorf("first entry = %v", entries[0])
	}
	if msg, _ := entries[1]["message"].(string); strings.Contains(msg, "abcdefghijklmnop") {
		t.Errorf("secret reached the viewer: %q", msg)
	}
	if end["reason"] != "expired" {
		t.Errorf("end = %v, want reason expired", end)
	}
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	if !asCloseError(err, &ce) || ce.Code != 4001 {
		t.Errorf("close = %v, want close code 4001", err)
	}

	// A reconnect after expiry is refused before the upgrade.
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + alice}}); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("tail after expiry: err %v resp %v, want 403", err, resp)
	}

	// Carol (security) finds every step in the audit trail; alice may not read it.
	if code := g.call("GET", "/api/v1/audit", alice, nil, nil); code != http.StatusForbidden {
		t.Errorf("alice reading audit: %d, want 403", code)
	}
	var trail struct {
		Items []auditJSON `json:"items"`
	}
	// stream.closed is written as the tail ends; give it a moment.
	within(5*time.Second, 50*time.Millisecond, func() bool { // the checks below say what is missing
		if code := g.call("GET", "/api/v1/audit?limit=1000", carol, nil, &trail); code != 200 {
			t.Fatalf("audit as carol: %d", code)
		}
		return hasAction(trail.Items, "stream.closed")
	})
	for _, action := range []string{"request.created", "request.approved", "grant.issued", "stream.opened", "stream.closed", "auth.token"} {
		if !hasAction(trail.Items, action) {
			t.Errorf("audit trail lacks %s", action)
		}
	}
	for i := 1; i < len(trail.Items); i++ { // newest first
		newer, older := trail.Items[i-1], trail.Items[i]
		if newer.Seq != older.Seq+1 || newer.PrevHash != older.Hash {
			t.Fatalf("chain broken between seq %d and %d", older.Seq, newer.Seq)
		}
	}
	for _, ev := range trail.Items {
		if ev.Action == "stream.closed" {
			if n, _ := ev.Details["entries"].(float64); n != 2 {
				t.Errorf("stream.closed entries = %v, want 2", ev.Details["entries"])
			}
			if ev.Details["close_reason"] != "expired" {
				t.Errorf("stream.closed reason = %v", ev.Details["close_reason"])
			}
		}
		raw, _ := json.Marshal(ev)
		if strings.Contains(string(raw), alice) || strings.Contains(string(raw), src) {
			t.Errorf("audit event %s contains a token", ev.Action)
		}
	}
}

func hasAction(evs []auditJSON, action string) bool {
	for _, e := range evs {
		if e.Action == action {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}

func asCloseError(err error, ce **websocket.CloseError) bool {
	c, ok := err.(*websocket.CloseError)
	if ok {
		*ce = c
	}
	return ok
}

package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/api/client"
	"github.com/loggate/loggate/gateway/logs"
)

// strict decodes data into T and fails on a field T does not know, so a
// server answer with a field missing from package api fails here.
func strict[T any](t *testing.T, what string, data []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s does not match package api: %v\n%s", what, err, data)
	}
	return v
}

// TestAPIContract: what the server sends decodes into package api's types
// with no field left over, including the shapes a leaf package builds
// (audit events, log entries, auth config), which api mirrors.
func TestAPIContract(t *testing.T) {
	h := newHarness(t)
	g := h.grantFor("alice", "30m")

	var raw json.RawMessage
	for _, c := range []struct {
		user, path string
		check      func([]byte)
	}{
		{"alice", "/api/v1/grants/" + g.ID, func(b []byte) { strict[api.Grant](t, "grant", b) }},
		{"alice", "/api/v1/requests/" + g.RequestID, func(b []byte) { strict[api.Request](t, "request", b) }},
		{"alice", "/api/v1/me", func(b []byte) { strict[api.Me](t, "me", b) }},
		{"alice", "/api/v1/streams", func(b []byte) { strict[api.List[api.Stream]](t, "streams", b) }},
		{"", "/api/v1/auth/config", func(b []byte) { strict[api.AuthConfig](t, "auth config", b) }},
		{"carol", "/api/v1/audit", func(b []byte) {
			page := strict[api.List[api.AuditEvent]](t, "audit events", b)
			if len(page.Items) == 0 {
				t.Error("no audit events to check")
			}
		}},
		{"alice", "/api/v1/grants/grt_nope", func(b []byte) {
			if e := strict[api.Error](t, "error", b); e.Code != api.CodeNotFound || e.Message == "" {
				t.Errorf("error = %+v, want code %s and a message", e, api.CodeNotFound)
			}
		}},
	} {
		raw = nil
		h.call(c.user, http.MethodGet, c.path, nil, &raw)
		c.check(raw)
	}

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(h.url, "http")+api.TailPath(g.ID),
		http.Header{"Authorization": {"Bearer " + h.token("alice")}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	publish := func() {
		if _, err := h.hub.Publish(context.Background(), []logs.Entry{{Service: "checkout", Env: "staging",
			Time: time.Now(), Level: "warn", Message: "hello", Attrs: map[string]string{"k": "v"}, Pod: "p-1"}}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !seen[api.FrameEnd] {
		_, data, err := conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) && ce.Code == api.CloseRevoked {
				break
			}
			t.Fatalf("tail: %v (frames seen %v)", err, seen)
		}
		f := strict[api.TailFrame](t, "tail frame", data)
		seen[f.Type] = true
		for _, e := range f.Entries {
			strict[api.Entry](t, "entry", e)
		}
		if f.Type == api.FrameSubscribed { // subscribed: a line published now reaches this tail
			publish()
		}
		if f.Type == api.FrameEntries {
			h.call("dave", http.MethodPost, "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "contract test"}, nil)
		}
		if f.Type == api.FrameEnd && f.Reason != api.EndRevoked {
			t.Errorf("end reason %q, want %q", f.Reason, api.EndRevoked)
		}
	}
	if !seen[api.FrameSubscribed] || !seen[api.FrameEntries] || !seen[api.FrameEnd] {
		t.Errorf("frames seen %v, want subscribed, entries and end", seen)
	}
}

// TestGoClient: the typed client against a real gateway: ask, read, refuse,
// revoke; a refusal is a *client.Error with the status and the server's code.
func TestGoClient(t *testing.T) {
	h := newHarness(t)
	as := func(user string) *client.Client {
		return &client.Client{BaseURL: h.url, UserAgent: "client-test",
			Token: func(context.Context) (string, error) { return h.token(user), nil }}
	}
	ctx := context.Background()
	alice, dave := as("alice"), as("dave")

	me, err := alice.Me(ctx)
	if err != nil || me.Email != "alice@example.com" {
		t.Fatalf("Me = %+v, %v", me, err)
	}
	req, err := alice.CreateRequest(ctx, api.CreateRequest{Service: "checkout", Env: "staging", Duration: "10m", Reason: "client test"})
	if err != nil || req.State != "approved" || req.Grant == nil {
		t.Fatalf("CreateRequest = %+v, %v; want approved with a grant", req, err)
	}
	if g, err := alice.Grant(ctx, req.Grant.ID); err != nil || g.State != "active" || g.TailPath != api.TailPath(g.ID) {
		t.Errorf("Grant = %+v, %v", g, err)
	}
	pending, err := alice.CreateRequest(ctx, api.CreateRequest{Service: "checkout", Env: "prod", Duration: "30m", Reason: "INC-1 client test"})
	if err != nil || pending.State != "pending" {
		t.Fatalf("prod request = %+v, %v; want pending", pending, err)
	}
	_, err = alice.Approve(ctx, pending.ID, "")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != api.CodeForbidden || ce.Message == "" {
		t.Errorf("approving one's own request: %v, want a 403 *client.Error", err)
	}
	if _, err := alice.Request(ctx, "req_nope"); client.StatusOf(err) != http.StatusNotFound {
		t.Errorf("unknown request: %v, want 404", err)
	}
	if g, err := dave.Revoke(ctx, req.Grant.ID, "client test over"); err != nil || g.State != "revoked" {
		t.Errorf("Revoke = %+v, %v", g, err)
	}
	if page, err := alice.Grants(ctx, nil); err != nil || len(page.Items) == 0 {
		t.Errorf("Grants = %+v, %v", page, err)
	}
}

// TestAlertAPIContract: the alert list, one alert, the rules and a PUT's
// answer decode strictly into package api's alert types.
func TestAlertAPIContract(t *testing.T) {
	ah := newAlertHarness(t)
	line := `{"level":"error","message":"payment failed for card 4111 1111 1111 1111"}`
	ah.ingest(line, line, line)
	ah.engine.Tick(context.Background())
	var raw json.RawMessage
	ah.call("carol", http.MethodGet, "/api/v1/alerts", nil, &raw)
	page := strict[api.List[api.Alert]](t, "alert list", raw)
	if len(page.Items) != 1 || page.Items[0].State != "firing" || page.Items[0].Link == "" {
		t.Fatalf("alerts = %+v, want one firing alert with a link", page.Items)
	}
	raw = nil
	ah.call("carol", http.MethodGet, "/api/v1/alerts/"+page.Items[0].ID, nil, &raw)
	strict[api.Alert](t, "alert", raw)
	raw = nil
	ah.call("carol", http.MethodGet, "/api/v1/alert-rules", nil, &raw)
	rs := strict[api.AlertRules](t, "alert rules", raw)
	if len(rs.Rules) == 0 || rs.Digest == "" || !rs.Editable || rs.Source == "" {
		t.Fatalf("alert rules = %+v", rs)
	}
	raw = nil
	if code := ah.call("carol", http.MethodPut, "/api/v1/alert-rules", map[string]string{"source": "- {name: y, window: 2m}\n"}, &raw); code != http.StatusOK {
		t.Fatalf("PUT alert-rules = %d %s", code, raw)
	}
	if saved := strict[api.AlertRulesSaved](t, "saved alert rules", raw); len(saved.Rules) != 1 || saved.Rules[0] != "y" {
		t.Errorf("saved = %+v", saved)
	}
}

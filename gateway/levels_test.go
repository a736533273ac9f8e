package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

const levelsToken = "lgs_test-levels-token"

// levelsSource registers a source that may write checkout/staging and
// checkout/prod, with a known token.
func levelsSource(t *testing.T, h *harness) {
	t.Helper()
	streams := []store.StreamRef{{Service: "checkout", Env: "staging"}, {Service: "checkout", Env: "prod"}}
	if _, err := h.srv.CreateSource(context.Background(), systemActor, "levels", levelsToken, streams); err != nil {
		t.Fatal(err)
	}
}

// dialControl opens the control WebSocket with the levels source's token.
func dialControl(t *testing.T, h *harness, query string) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(h.url, "http") + "/api/v1/control/levels" + query
	conn, resp, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + levelsToken}})
	if err != nil {
		t.Fatalf("dial control: %v (status %v)", err, statusOf(resp))
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// nextLevels reads the next levels frame and acknowledges it.
func nextLevels(t *testing.T, conn *websocket.Conn) levelsFrame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f levelsFrame
	if err := conn.ReadJSON(&f); err != nil {
		t.Fatalf("read levels frame: %v", err)
	}
	if f.Type != "levels" {
		t.Fatalf("frame type %q, want levels", f.Type)
	}
	if err := conn.WriteJSON(ackFrame{Type: "ack", Version: f.Version}); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitEvents polls the audit trail until n events of action exist.
func waitEvents(t *testing.T, h *harness, action string, n int) []audit.Event {
	t.Helper()
	evs, ok := h.eventsWithin(audit.Query{Action: action}, 10*time.Second, 20*time.Millisecond,
		func(evs []audit.Event) bool { return len(evs) >= n })
	if !ok {
		t.Fatalf("%s events = %d, want %d", action, len(evs), n)
	}
	return evs
}

func debugRequest(scope map[string]string) map[string]any {
	r := stagingRequest("30m")
	r["level"] = "debug"
	if scope != nil {
		r["scope"] = scope
	}
	return r
}

// TestControlLevelsRefusals: the control endpoint answers JSON errors:
// 401 without or with a bad token, 403 for a stream the token may not
// write, 400 for a bad query.
func TestControlLevelsRefusals(t *testing.T) {
	h := newHarness(t)
	levelsSource(t, h)
	for _, tc := range []struct {
		name, token, query string
		want               int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"bad token", "lgs_nope", "", http.StatusUnauthorized},
		{"another stream", levelsToken, "?service=payments&env=prod", http.StatusForbidden},
		{"bad version", levelsToken, "?version=x", http.StatusBadRequest},
		{"bad wait", levelsToken, "?wait=2h", http.StatusBadRequest},
		{"half a stream", levelsToken, "?service=checkout", http.StatusBadRequest},
		{"ok", levelsToken, "?service=checkout&env=staging", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.url+"/api/v1/control/levels"+tc.query, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("status %d (%v), want %d", resp.StatusCode, body, tc.want)
			}
			if tc.want != http.StatusOK && body["error"] == nil {
				t.Errorf("error body %v has no error", body)
			}
		})
	}
}

// TestRequestLevelValidation: only raised, known levels; a scope needs one.
func TestRequestLevelValidation(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name  string
		level any
		scope any
	}{
		{"unknown level", "verbose", nil},
		{"not a raise", "info", nil},
		{"scope without level", "", map[string]string{"tenant": "acme"}},
		{"bad scope key", "debug", map[string]string{"a=b": "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := stagingRequest("10m")
			body["level"] = tc.level
			if tc.scope != nil {
				body["scope"] = tc.scope
			}
			var out map[string]any
			if got := h.call("alice", "POST", "/api/v1/requests", body, &out); got != http.StatusBadRequest {
				t.Errorf("status %d (%v), want 400", got, out)
			}
		})
	}
	v := h.ask("alice", debugRequest(map[string]string{"tenant": "acme"}), http.StatusCreated)
	if v.Level != "debug" || v.Grant == nil || v.Grant.Level != "debug" || v.Grant.Scope["tenant"] != "acme" {
		t.Errorf("request level %q, grant %+v; want debug with scope tenant=acme", v.Level, v.Grant)
	}
}

// TestDebugPolicyInProd: debug in prod needs an sre-leads approval and is
// capped at 30 minutes.
func TestDebugPolicyInProd(t *testing.T) {
	h := newHarness(t)
	body := prodRequest()
	body["level"] = "debug"
	body["duration"] = "1h"
	v := h.ask("alice", body, http.StatusCreated)
	if v.State != store.StateDenied {
		t.Fatalf("1h of debug in prod: state %q, want denied", v.State)
	}
	body["duration"] = "30m"
	v = h.ask("alice", body, http.StatusCreated)
	if v.State != store.StatePending || v.Decision.MaxDuration != "30m0s" {
		t.Errorf("30m of debug in prod: state %q, max %q; want pending, 30m", v.State, v.Decision.MaxDuration)
	}
}

// TestDebugViewRaisesLevel: a view of a debug grant raises the level for
// its scope on the control channel; closing it lowers it again; both
// changes are audited with the acknowledgement count.
func TestDebugViewRaisesLevel(t *testing.T) {
	h := newHarness(t)
	levelsSource(t, h)
	ctl := dialControl(t, h, "?instance=svc-1")
	if f := nextLevels(t, ctl); len(f.Levels) != 0 {
		t.Fatalf("initial levels %+v, want none", f.Levels)
	}
	g := *h.ask("alice", debugRequest(map[string]string{"tenant": "acme"}), http.StatusCreated).Grant
	tail, _, err := h.dialTail("alice", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	f := nextLevels(t, ctl)
	if len(f.Levels) != 1 {
		t.Fatalf("levels after view %+v, want one rule", f.Levels)
	}
	r := f.Levels[0]
	if r.Service != "checkout" || r.Env != "staging" || r.Level != "debug" || r.Scope["tenant"] != "acme" || len(r.Grants) != 1 || r.Grants[0] != g.ID {
		t.Errorf("rule %+v, want checkout/staging debug tenant=acme by %s", r, g.ID)
	}
	en := waitEvents(t, h, "stream.debug_enabled", 1)[0]
	if got := fmt.Sprint(en.Details["instances_acknowledged"]); got != "1" {
		t.Errorf("debug_enabled instances_acknowledged = %v, want 1 (details %v)", got, en.Details)
	}
	if en.Target.GrantID != g.ID || en.Details["scope"] != "tenant=acme" {
		t.Errorf("debug_enabled target %+v details %v", en.Target, en.Details)
	}
	tail.Close()
	if f := nextLevels(t, ctl); len(f.Levels) != 0 {
		t.Errorf("levels after close %+v, want none", f.Levels)
	}
	waitEvents(t, h, "stream.debug_disabled", 1)
}

// TestDebugLevelEndsOnRevoke: revoking the grant lowers the level.
func TestDebugLevelEndsOnRevoke(t *testing.T) {
	h := newHarness(t)
	levelsSource(t, h)
	ctl := dialControl(t, h, "?service=checkout&env=staging")
	nextLevels(t, ctl)
	g := *h.ask("alice", debugRequest(nil), http.StatusCreated).Grant
	tail, _, err := h.dialTail("alice", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	if f := nextLevels(t, ctl); len(f.Levels) != 1 || f.Levels[0].Scope != nil {
		t.Fatalf("levels after view %+v, want one whole-service rule", f.Levels)
	}
	if code := h.call("dave", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "done"}, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	if f := nextLevels(t, ctl); len(f.Levels) != 0 {
		t.Errorf("levels after revoke %+v, want none", f.Levels)
	}
}

// TestControlLongPoll: the HTTP form answers at once without a version,
// and waits for a change with the current one.
func TestControlLongPoll(t *testing.T) {
	h := newHarness(t)
	levelsSource(t, h)
	poll := func(query string) levelsFrame {
		t.Helper()
		req, _ := http.NewRequest("GET", h.url+"/api/v1/control/levels"+query, nil)
		req.Header.Set("Authorization", "Bearer "+levelsToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var f levelsFrame
		if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&f) != nil {
			t.Fatalf("poll %s: status %d", query, resp.StatusCode)
		}
		return f
	}
	f := poll("?instance=py-1")
	g := *h.ask("alice", debugRequest(nil), http.StatusCreated).Grant
	got := make(chan levelsFrame, 1)
	go func() { got <- poll("?instance=py-1&wait=30s&version=" + jsonNumber(f.Version)) }()
	tail, _, err := h.dialTail("alice", g.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer tail.Close()
	f2 := <-got
	if f2.Version <= f.Version || len(f2.Levels) != 1 {
		t.Errorf("long poll answered %+v, want a newer version with one rule", f2)
	}
}

func jsonNumber(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// The properties every route of the table is checked for. A row either
// gives the case for a property or says in na why it does not apply: a
// route is never skipped in silence.
const (
	propUnauth    = "unauthenticated → 401"
	propForbidden = "not allowed → 403 + denied event"
	propBadInput  = "malformed input → 400 naming the field"
	propOversize  = "oversize body → 413"
	propUnknownID = "unknown id → 404"
)

var routeProps = []string{propUnauth, propForbidden, propBadInput, propOversize, propUnknownID}

// routeFixture is what the rows refer to: a real request, grant, review,
// source and audit event, and a source bound to checkout/staging only.
type routeFixture struct {
	requestID, grantID, reviewID, sourceID, eventID string
	stagingToken                                    string
}

// call is one HTTP request of a property check.
type call struct {
	user   string // signed in as (bearer); "" for none
	method string // "" for the route's own
	path   string // "" for the row's path
	body   string
	ctype  string // "" for application/json when there is a body
	authz  string // an Authorization header instead of user's token
}

// forbidCase is a signed-in caller refused by the route, and the denied
// event the refusal must leave (actor kind user unless sourceActor).
type forbidCase struct {
	call
	action      string
	sourceActor bool
}

// badCase is a malformed request and the field its 400 must name.
type badCase struct {
	call
	field string
}

// routeRow is how the properties apply to one route.
type routeRow struct {
	path      string // the path to call, ids filled in
	forbidden *forbidCase
	bad       *badCase
	okUser    string // a caller allowed past authorization (for 413 and 404)
	unknownID string // the path with an unknown id
	ingest    *call  // a source route's body: content type and body
	na        map[string]string
}

func na(pairs ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return m
}

const (
	noInput     = "takes no input"
	anyone      = "open to anyone by design"
	anySignedIn = "every signed-in person may call it"
	noID        = "no id in the path"
	noBody      = "a GET route reads no body"
)

// routeRows gives every route of the table its row, keyed "METHOD path".
func routeRows(f routeFixture) map[string]routeRow {
	public := func(path string) routeRow {
		return routeRow{path: path, na: na(propUnauth, anyone, propForbidden, anyone, propBadInput, noInput,
			propOversize, noBody, propUnknownID, noID)}
	}
	browser := routeRow{na: na(propUnauth, "the sign-in flow itself (covered by auth's handler tests)",
		propForbidden, "the sign-in flow itself; a /logout without its CSRF token is 403 JSON and auth.failed (auth tests)",
		propBadInput, "the sign-in flow answers the provider's errors on its own page (auth tests)",
		propOversize, "reads no JSON body", propUnknownID, noID)}
	login, callback, logout := browser, browser, browser
	login.path, callback.path, logout.path = "/login", "/auth/callback", "/logout"
	g, rq := "/api/v1/grants/"+f.grantID, "/api/v1/requests/"+f.requestID
	ingestJSON := ingestRoutes[0]
	return map[string]routeRow{
		"GET /healthz":            public("/healthz"),
		"GET /readyz":             public("/readyz"),
		"GET /metrics":            public("/metrics"),
		"GET /api/v1/auth/config": public("/api/v1/auth/config"),
		"GET /api/v1/audit/keys":  public("/api/v1/audit/keys"),
		"GET /login":              login,
		"GET /auth/callback":      callback,
		"POST /logout":            logout,
		"POST /auth/backchannel-logout": {path: "/auth/backchannel-logout", na: na(
			propUnauth, "the logout token is the credential: a refused one is 400 and auth.failed (cmd/loggate backchannel_test.go, which has server-side sessions)",
			propForbidden, "as above", propBadInput, "as above", propOversize, "as above (a form of at most 64 KiB)",
			propUnknownID, noID)},

		"GET /api/v1/me":      {path: "/api/v1/me", okUser: "alice", na: na(propForbidden, anySignedIn, propBadInput, noInput, propUnknownID, noID)},
		"GET /api/v1/streams": {path: "/api/v1/streams", okUser: "alice", na: na(propForbidden, anySignedIn, propBadInput, noInput, propUnknownID, noID)},
		"POST /api/v1/requests": {path: "/api/v1/requests", okUser: "alice",
			bad: &badCase{call{user: "alice", body: `{"service":"checkout","env":"prod","duration":"forever","reason":"INC-1"}`}, "duration"},
			na:  na(propForbidden, "a policy denial is 201 with state denied and request.denied in the trail", propUnknownID, noID)},
		"GET /api/v1/requests": {path: "/api/v1/requests", okUser: "alice",
			forbidden: &forbidCase{call: call{user: "alice", path: "/api/v1/requests?scope=all"}, action: "access.denied"},
			bad:       &badCase{call{user: "alice", path: "/api/v1/requests?state=bogus"}, "state"},
			na:        na(propUnknownID, noID)},
		"GET /api/v1/requests/{id}": {path: rq, okUser: "alice", unknownID: "/api/v1/requests/req_unknown",
			forbidden: &forbidCase{call: call{user: "gina"}, action: "access.denied"},
			na:        na(propBadInput, "only the id, whose property is 404")},
		"POST /api/v1/requests/{id}/approve": {path: rq + "/approve", okUser: "bob", unknownID: "/api/v1/requests/req_unknown/approve",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "request.approved"},
			bad:       &badCase{call{user: "bob", body: `{"comment":5}`}, "comment"}},
		"POST /api/v1/requests/{id}/deny": {path: rq + "/deny", okUser: "bob", unknownID: "/api/v1/requests/req_unknown/deny",
			forbidden: &forbidCase{call: call{user: "gina", body: `{"comment":"no"}`}, action: "request.denied"},
			bad:       &badCase{call{user: "bob", body: `{}`}, "comment"}},
		"POST /api/v1/requests/{id}/cancel": {path: rq + "/cancel", okUser: "alice", unknownID: "/api/v1/requests/req_unknown/cancel",
			forbidden: &forbidCase{call: call{user: "gina"}, action: "request.cancelled"},
			na:        na(propBadInput, "takes no body")},

		"GET /api/v1/grants": {path: "/api/v1/grants", okUser: "alice",
			forbidden: &forbidCase{call: call{user: "alice", path: "/api/v1/grants?all=true"}, action: "access.denied"},
			bad:       &badCase{call{user: "alice", path: "/api/v1/grants?state=bogus"}, "state"},
			na:        na(propUnknownID, noID)},
		"GET /api/v1/grants/{id}": {path: g, okUser: "alice", unknownID: "/api/v1/grants/grt_unknown",
			forbidden: &forbidCase{call: call{user: "gina"}, action: "access.denied"},
			na:        na(propBadInput, "only the id, whose property is 404")},
		"POST /api/v1/grants/{id}/revoke": {path: g + "/revoke", okUser: "alice", unknownID: "/api/v1/grants/grt_unknown/revoke",
			forbidden: &forbidCase{call: call{user: "gina", body: `{"reason":"x"}`}, action: "grant.revoked"},
			bad:       &badCase{call{user: "alice", body: `{"reason":""}`}, "reason"}},
		"POST /api/v1/grants/{id}/extend": {path: g + "/extend", okUser: "alice", unknownID: "/api/v1/grants/grt_unknown/extend",
			forbidden: &forbidCase{call: call{user: "gina", body: `{"duration":"5m","reason":"more"}`}, action: "grant.extended"},
			bad:       &badCase{call{user: "alice", body: `{"duration":"x","reason":"more"}`}, "duration"}},
		"GET /api/v1/grants/{id}/tail": {path: g + "/tail", okUser: "alice", unknownID: "/api/v1/grants/grt_unknown/tail",
			forbidden: &forbidCase{call: call{user: "gina"}, action: "stream.opened"},
			bad:       &badCase{call{user: "alice", path: g + "/tail?lines=-1"}, "lines"},
			na:        na(propOversize, "a WebSocket upgrade has no body")},
		"GET /api/v1/grants/{id}/timeline": {path: g + "/timeline", okUser: "alice", unknownID: "/api/v1/grants/grt_unknown/timeline",
			forbidden: &forbidCase{call: call{user: "gina"}, action: "access.denied"},
			na:        na(propBadInput, "only the id, whose property is 404")},
		"GET /api/v1/views/{view_id}/replay": {path: "/api/v1/views/view_unknown/replay?reason=INC-1", okUser: "carol",
			unknownID: "/api/v1/views/view_unknown/replay?reason=INC-1",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "view.replayed"},
			bad:       &badCase{call{user: "carol", path: "/api/v1/views/view_unknown/replay"}, "reason"}},
		"POST /api/v1/grants/{id}/legal-hold": {path: g + "/legal-hold", okUser: "carol", unknownID: "/api/v1/grants/grt_unknown/legal-hold",
			forbidden: &forbidCase{call: call{user: "alice", body: `{"on":true,"reason":"litigation"}`}, action: "grant.legal_hold"},
			bad:       &badCase{call{user: "carol", body: `{"reason":"litigation"}`}, "on"}},

		"GET /api/v1/reviews": {path: "/api/v1/reviews", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "access.denied"},
			bad:       &badCase{call{user: "carol", path: "/api/v1/reviews?state=bogus"}, "state"},
			na:        na(propUnknownID, noID)},
		"POST /api/v1/reviews/{id}/close": {path: "/api/v1/reviews/" + f.reviewID + "/close", okUser: "carol",
			unknownID: "/api/v1/reviews/rev_unknown/close",
			forbidden: &forbidCase{call: call{user: "alice", body: `{"comment":"fine"}`}, action: "access.denied"},
			bad:       &badCase{call{user: "carol", body: `{"comment":5}`}, "comment"}},

		"GET /api/v1/audit": {path: "/api/v1/audit", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "export.search"},
			bad:       &badCase{call{user: "carol", path: "/api/v1/audit?outcome=bogus"}, "outcome"},
			na:        na(propUnknownID, noID)},
		"GET /api/v1/audit/export": {path: "/api/v1/audit/export", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "export.search"},
			bad:       &badCase{call{user: "carol", path: "/api/v1/audit/export?format=xml"}, "format"},
			na:        na(propUnknownID, noID)},
		"GET /api/v1/audit/checkpoint": {path: "/api/v1/audit/checkpoint", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "export.search"},
			na:        na(propBadInput, noInput, propUnknownID, noID)},
		"GET /api/v1/audit/verify": {path: "/api/v1/audit/verify", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "export.search"},
			bad:       &badCase{call{user: "carol", path: "/api/v1/audit/verify?fresh=maybe"}, "fresh"},
			na:        na(propUnknownID, noID)},
		"GET /api/v1/audit/legal-hold": {path: "/api/v1/audit/legal-hold", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "access.denied"},
			na:        na(propBadInput, noInput, propUnknownID, noID)},
		"POST /api/v1/audit/legal-hold": {path: "/api/v1/audit/legal-hold", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice", body: `{"on":true,"reason":"x"}`}, action: "access.denied"},
			bad:       &badCase{call{user: "carol", body: `{"reason":"litigation"}`}, "on"},
			na:        na(propUnknownID, noID)},
		"POST /api/v1/audit/purge": {path: "/api/v1/audit/purge", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice", body: `{"before":"2020-01-01T00:00:00Z"}`}, action: "access.denied"},
			bad:       &badCase{call{user: "carol", body: `{"before":"yesterday"}`}, "before"},
			na:        na(propUnknownID, noID)},
		"POST /api/v1/audit/rotate-key": {path: "/api/v1/audit/rotate-key", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "access.denied"},
			na:        na(propBadInput, "takes no body", propUnknownID, noID)},
		"GET /api/v1/audit/{id}/proof": {path: "/api/v1/audit/" + f.eventID + "/proof", okUser: "carol",
			unknownID: "/api/v1/audit/evt_unknown/proof",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "export.search"},
			na:        na(propBadInput, "only the id, whose property is 404")},

		"GET /api/v1/sources": {path: "/api/v1/sources", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "access.denied"},
			bad:       &badCase{call{user: "carol", path: "/api/v1/sources?limit=0"}, "limit"},
			na:        na(propUnknownID, noID)},
		"POST /api/v1/sources": {path: "/api/v1/sources", okUser: "carol",
			forbidden: &forbidCase{call: call{user: "alice", body: `{"name":"x","streams":[{"service":"a","env":"b"}]}`}, action: "access.denied"},
			bad:       &badCase{call{user: "carol", body: `{"name":"x","streams":[{"service":"../etc","env":"prod"}]}`}, "service"},
			na:        na(propUnknownID, noID)},
		"POST /api/v1/sources/{id}/revoke": {path: "/api/v1/sources/" + f.sourceID + "/revoke", okUser: "carol",
			unknownID: "/api/v1/sources/src_unknown/revoke",
			forbidden: &forbidCase{call: call{user: "alice"}, action: "access.denied"},
			na:        na(propBadInput, "takes no body")},
		"GET /api/v1/policy": {path: "/api/v1/policy", okUser: "alice",
			na: na(propForbidden, anySignedIn, propBadInput, noInput, propUnknownID, noID)},
		"GET /api/v1/sessions": {path: "/api/v1/sessions", okUser: "alice",
			na: na(propForbidden, "everyone sees their own sessions (admins everyone's)", propBadInput, noInput, propUnknownID, noID)},
		"DELETE /api/v1/sessions/{id}": {path: "/api/v1/sessions/" + strings.Repeat("0", 32), okUser: "alice",
			unknownID: "/api/v1/sessions/" + strings.Repeat("f", 32),
			na: na(propForbidden, "someone else's session is 404 like an unknown one, so its existence is not revealed",
				propBadInput, "takes no body")},

		"POST /api/v1/ingest": {path: ingestJSON.path, ingest: &call{ctype: ingestJSON.contentType, body: ingestJSON.body},
			forbidden: &forbidCase{call: call{authz: "Bearer " + f.stagingToken, ctype: ingestJSON.contentType, body: ingestJSON.body},
				action: "ingest.write", sourceActor: true},
			bad: &badCase{call{authz: "Bearer " + f.stagingToken, path: "/api/v1/ingest?service=../../etc&env=staging",
				ctype: "application/x-ndjson", body: `{"message":"hi"}`}, "service"},
			na: na(propUnknownID, noID)},
		"POST /v1/logs": {path: "/v1/logs", ingest: &call{ctype: ingestRoutes[1].contentType, body: ingestRoutes[1].body},
			forbidden: &forbidCase{call: call{authz: "Bearer " + f.stagingToken, ctype: ingestRoutes[1].contentType, body: ingestRoutes[1].body},
				action: "ingest.write", sourceActor: true},
			bad: &badCase{call{authz: "Bearer " + f.stagingToken, ctype: "application/json", body: `{"resourceLogs":5}`}, "resourceLogs"},
			na:  na(propUnknownID, noID)},
		"GET /api/v1/control/levels": {path: "/api/v1/control/levels", ingest: &call{},
			forbidden: &forbidCase{call: call{authz: "Bearer " + f.stagingToken, path: "/api/v1/control/levels?service=checkout&env=prod"},
				action: "control.levels", sourceActor: true},
			bad: &badCase{call{authz: "Bearer " + f.stagingToken, path: "/api/v1/control/levels?version=x"}, "version"},
			na:  na(propOversize, noBody, propUnknownID, noID)},
		"POST /loki/api/v1/push": {path: "/loki/api/v1/push", ingest: &call{ctype: ingestRoutes[2].contentType, body: ingestRoutes[2].body},
			forbidden: &forbidCase{call: call{authz: "Bearer " + f.stagingToken, ctype: ingestRoutes[2].contentType, body: ingestRoutes[2].body},
				action: "ingest.write", sourceActor: true},
			bad: &badCase{call{authz: "Bearer " + f.stagingToken, ctype: "application/json", body: `{"streams":5}`}, "streams"},
			na:  na(propUnknownID, noID)},
	}
}

// newRouteFixture makes the objects the rows refer to.
func newRouteFixture(h *harness) routeFixture {
	h.t.Helper()
	var f routeFixture
	f.requestID = h.ask("alice", prodRequest(), http.StatusCreated).ID
	f.grantID = h.grantFor("alice", "30m").ID
	bg := prodRequest()
	bg["break_glass"] = true
	bg["reason"], bg["duration"] = "prod is on fire", "15m"
	if v := h.ask("bob", bg, http.StatusCreated); v.Grant == nil {
		h.t.Fatalf("break glass: state %q, no grant", v.State)
	}
	var reviews api.List[api.Review]
	if got := h.call("carol", "GET", "/api/v1/reviews?state=open", nil, &reviews); got != http.StatusOK || len(reviews.Items) == 0 {
		h.t.Fatalf("reviews: status %d, %d items", got, len(reviews.Items))
	}
	f.reviewID = reviews.Items[0].ID
	src := h.stagingSource("property shipper")
	f.sourceID, f.stagingToken = src.ID, src.Token
	evs := h.events(audit.Query{Action: "request.created"})
	if len(evs) == 0 {
		h.t.Fatal("no event in the trail")
	}
	f.eventID = evs[0].ID
	return f
}

// answer is what a property check saw.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) isJSONError() bool {
	msg, _ := a.body["error"].(string)
	return strings.HasPrefix(a.header.Get("Content-Type"), "application/json") && msg != ""
}

func (a answer) message() string { msg, _ := a.body["error"].(string); return msg }

func (h *harness) do(rowPath, rowMethod string, c call) answer {
	h.t.Helper()
	method, path := c.method, c.path
	if method == "" {
		method = rowMethod
	}
	if path == "" {
		path = rowPath
	}
	var rd io.Reader
	if c.body != "" {
		rd = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(method, h.url+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	switch {
	case c.authz != "":
		req.Header.Set("Authorization", c.authz)
	case c.user != "":
		req.Header.Set("Authorization", "Bearer "+h.token(c.user))
	}
	if c.body != "" {
		ct := c.ctype
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(data)}
	_ = json.Unmarshal(data, &a.body)
	return a
}

// deniedCount counts the trail's denied events of action (by actor kind).
func (h *harness) deniedCount(action, kind string) int {
	n := 0
	for _, ev := range h.events(audit.Query{Action: action, Outcome: audit.OutcomeDenied}) {
		if ev.Actor.Kind == kind {
			n++
		}
	}
	return n
}

func (h *harness) sourceFailedCount() int {
	n := 0
	for _, ev := range h.events(audit.Query{Action: "auth.failed"}) {
		if ev.Actor.Kind == audit.ActorSource {
			n++
		}
	}
	return n
}

// TestRouteTableProperties walks the route table: every route has a row,
// and every row's answers hold — 401/403/400/413/404 JSON with the denied
// event a refusal leaves, 405 with Allow for a wrong method.
func TestRouteTableProperties(t *testing.T) {
	h := newHarness(t)
	f := newRouteFixture(h)
	rows := routeRows(f)
	table := h.srv.Routes()
	methods := map[string][]string{} // path -> methods of the table
	for _, rt := range table {
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	covered := map[string]bool{}
	for _, rt := range table {
		key := rt.Method + " " + rt.Path
		row, ok := rows[key]
		if !ok {
			t.Errorf("route %s (auth %s) has no row in routeRows: say how each property applies to it", key, rt.Auth)
			continue
		}
		covered[key] = true
		t.Run(key, func(st *testing.T) {
			h.t = st
			defer func() { h.t = t }()
			t := st
			checkRow(t, h, rt, row, methods[rt.Path])
		})
	}
	for key := range rows {
		if !covered[key] {
			t.Errorf("row %s names no route of the table", key)
		}
	}
	keys := make([]string, 0, len(covered))
	for k := range covered {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	t.Logf("covered %d routes:\n  %s", len(keys), strings.Join(keys, "\n  "))
}

func checkRow(t *testing.T, h *harness, rt Route, row routeRow, pathMethods []string) {
	for _, p := range routeProps {
		if _, skip := row.na[p]; skip {
			continue
		}
		switch p {
		case propUnauth:
			if rt.Auth != RouteAuthUser && rt.Auth != RouteAuthSource {
				t.Errorf("%s: auth %s, so say why it does not apply", p, rt.Auth)
				continue
			}
			if rt.Auth == RouteAuthSource {
				h.clock.Advance(sourceFailureWindow) // the first of its burst: recorded at once
				before := h.sourceFailedCount()
				a := h.do(row.path, rt.Method, call{authz: "Bearer " + NewSourceToken(), ctype: row.ingest.ctype, body: row.ingest.body})
				if a.status != http.StatusUnauthorized || !a.isJSONError() {
					t.Errorf("%s: bad source token: %d %s, want 401 JSON", p, a.status, a.raw)
				}
				if after := h.sourceFailedCount(); after != before+1 {
					t.Errorf("%s: %d new auth.failed events with actor kind source, want 1", p, after-before)
				}
				continue
			}
			if a := h.do(row.path, rt.Method, call{}); a.status != http.StatusUnauthorized || !a.isJSONError() {
				t.Errorf("%s: %d %q %s, want 401 JSON", p, a.status, a.header.Get("Content-Type"), a.raw)
			}
		case propForbidden:
			fc := row.forbidden
			if fc == nil {
				t.Errorf("%s: no case and no reason it does not apply", p)
				continue
			}
			kind := audit.ActorUser
			if fc.sourceActor {
				kind = audit.ActorSource
				h.clock.Advance(sourceFailureWindow)
			}
			before := h.deniedCount(fc.action, kind)
			a := h.do(row.path, rt.Method, fc.call)
			if a.status != http.StatusForbidden || !a.isJSONError() {
				t.Errorf("%s: %d %s, want 403 JSON", p, a.status, a.raw)
			}
			if after := h.deniedCount(fc.action, kind); after != before+1 {
				t.Errorf("%s: %d new %s events with outcome denied (actor kind %s), want 1", p, after-before, fc.action, kind)
			}
		case propBadInput:
			bc := row.bad
			if bc == nil {
				t.Errorf("%s: no case and no reason it does not apply", p)
				continue
			}
			a := h.do(row.path, rt.Method, bc.call)
			if a.status != http.StatusBadRequest || !a.isJSONError() {
				t.Errorf("%s: %d %s, want 400 JSON", p, a.status, a.raw)
			} else if !strings.Contains(a.message(), bc.field) {
				t.Errorf("%s: message %q does not name %q", p, a.message(), bc.field)
			}
		case propOversize:
			c := call{user: row.okUser, body: `{"reason":"` + strings.Repeat("x", 1<<20) + `"}`}
			if rt.Auth == RouteAuthSource {
				c = call{authz: "Bearer " + h.sourceToken(), ctype: row.ingest.ctype,
					body: strings.Repeat(`{"message":"`+strings.Repeat("x", 1000)+`"}`+"\n", 9<<10)}
			} else if row.okUser == "" {
				t.Errorf("%s: row has no okUser", p)
				continue
			}
			if a := h.do(row.path, rt.Method, c); a.status != http.StatusRequestEntityTooLarge || !a.isJSONError() {
				t.Errorf("%s: %d %.200s, want 413 JSON", p, a.status, a.raw)
			}
		case propUnknownID:
			if row.unknownID == "" || row.okUser == "" {
				t.Errorf("%s: no unknownID path (or okUser) and no reason it does not apply", p)
				continue
			}
			c := call{user: row.okUser, path: row.unknownID}
			if row.forbidden != nil {
				c.body = row.forbidden.body // a valid body: only the id is wrong
			}
			if a := h.do(row.path, rt.Method, c); a.status != http.StatusNotFound || !a.isJSONError() {
				t.Errorf("%s: %d %s, want 404 JSON", p, a.status, a.raw)
			}
		}
	}
	// Wrong method: 405 JSON with Allow naming exactly the table's methods.
	a := h.do(row.path, http.MethodPut, call{user: "alice"})
	want := slices.Clone(pathMethods)
	if slices.Contains(want, http.MethodGet) {
		want = append(want, http.MethodHead)
	}
	got := strings.Split(a.header.Get("Allow"), ", ")
	slices.Sort(want)
	slices.Sort(got)
	if a.status != http.StatusMethodNotAllowed || !a.isJSONError() || !slices.Equal(got, want) {
		t.Errorf("PUT: %d Allow %q %s, want 405 JSON with Allow %v", a.status, a.header.Get("Allow"), a.raw, want)
	}
}

// sourceToken is a token of a source that may write checkout/prod.
func (h *harness) sourceToken() string {
	h.t.Helper()
	v, err := h.srv.CreateSource(context.Background(), systemActor, "prod shipper", "",
		[]store.StreamRef{{Service: "checkout", Env: "prod"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return v.Token
}

package gateway

import (
	"net/http"
	"strings"
	"testing"
)

// TestIngestAndSourceNameMessages: an invalid service, environment or
// source name is a 400 saying which value is invalid and what is allowed,
// never "required" when it was given.
func TestIngestAndSourceNameMessages(t *testing.T) {
	h := newHarness(t)
	tok := h.sourceToken()
	otlp := func(service string) string {
		return `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"` + service +
			`"}},{"key":"deployment.environment","value":{"stringValue":"prod"}}]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}`
	}
	ingest := []struct {
		name, path, ctype, body string
		want                    []string
	}{
		{"invalid service in the query", "/api/v1/ingest?service=../../etc&env=prod", "application/x-ndjson", `{"message":"hi"}`,
			[]string{`query parameter service "../../etc" is not a valid name`, "lower-case letters"}},
		{"missing env in the query", "/api/v1/ingest?service=checkout", "application/x-ndjson", `{"message":"hi"}`,
			[]string{"query parameter env is required", "lower-case letters"}},
		{"invalid service in an OTLP record", "/v1/logs", "application/json", otlp("Checkout API"),
			[]string{`entry 1: service "Checkout API" is not a valid name`, "lower-case letters"}},
	}
	for _, tc := range ingest {
		status, _, out := h.ingestCall(tc.path, "Bearer "+tok, tc.ctype, tc.body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d (%v), want 400", tc.name, status, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out["error"], w) {
				t.Errorf("%s: error %q, want it to contain %q", tc.name, out["error"], w)
			}
		}
	}
	sources := []struct {
		name string
		body map[string]any
		want string
	}{
		{"invalid stream service", map[string]any{"name": "x", "streams": []map[string]string{{"service": "../etc", "env": "prod"}}},
			`streams[0].service "../etc" is not a valid name`},
		{"invalid stream env", map[string]any{"name": "x", "streams": []map[string]string{{"service": "*", "env": "Prod"}}},
			`streams[0].env "Prod" is not a valid name`},
		{"name too long", map[string]any{"name": strings.Repeat("é", 101), "streams": []map[string]string{{"service": "a", "env": "b"}}},
			`"name" is 101 characters; at most 100`},
		{"name with a control character", map[string]any{"name": "ship\x1b[2Jper", "streams": []map[string]string{{"service": "a", "env": "b"}}},
			`contains control characters`},
	}
	for _, tc := range sources {
		var out map[string]string
		if got := h.call("carol", "POST", "/api/v1/sources", tc.body, &out); got != http.StatusBadRequest {
			t.Errorf("%s: status %d (%v), want 400", tc.name, got, out)
			continue
		}
		if !strings.Contains(out["error"], tc.want) || strings.Contains(out["error"], "required") {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, out["error"], tc.want)
		}
	}
}

// TestListParametersValidated: every list answers an unknown enum value, a
// bad flag and a bad limit with a 400 naming the parameter and what is
// allowed.
func TestListParametersValidated(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct{ user, path, want string }{
		{"alice", "/api/v1/requests?state=bogus", `state "bogus" is not one of pending, approved, denied, cancelled, lapsed`},
		{"alice", "/api/v1/requests?scope=everyone", `scope "everyone" is not one of mine, approvable, all`},
		{"alice", "/api/v1/grants?state=bogus", `state "bogus" is not one of active, expired, revoked`},
		{"alice", "/api/v1/grants?all=yes", `all "yes" is not one of true, false`},
		{"carol", "/api/v1/reviews?state=bogus", `state "bogus" is not one of open, closed`},
		{"carol", "/api/v1/audit?outcome=bogus", `outcome "bogus" is not one of success, denied, failure, error, interrupted`},
		{"carol", "/api/v1/audit/export?format=xml", `format "xml" is not one of ndjson, csv`},
		{"carol", "/api/v1/audit?since=yesterday", "since must be an RFC 3339 time or a duration"},
		{"carol", "/api/v1/audit/verify?fresh=1", `fresh "1" is not one of true, false`},
		{"carol", "/api/v1/sources?limit=0", `limit "0" is not an integer from 1 to 1000`},
		{"alice", "/api/v1/requests?limit=x", `limit "x" is not an integer from 1 to 1000`},
	} {
		var out map[string]string
		if got := h.call(tc.user, "GET", tc.path, nil, &out); got != http.StatusBadRequest || !strings.Contains(out["error"], tc.want) {
			t.Errorf("GET %s: %d %q, want 400 containing %q", tc.path, got, out["error"], tc.want)
		}
	}
}

// TestEmptyIngestBody: an empty body is zero entries on every ingest route
// and format, answered as that route answers success; an empty API body
// where a JSON object is required is a 400 saying so.
func TestEmptyIngestBody(t *testing.T) {
	h := newHarness(t)
	tok := h.sourceToken()
	for _, c := range []struct {
		path, ctype string
		want        int
	}{
		{"/api/v1/ingest?service=checkout&env=prod", "application/x-ndjson", http.StatusOK},
		{"/v1/logs", "application/json", http.StatusOK},
		{"/v1/logs", "application/x-protobuf", http.StatusOK},
		{"/loki/api/v1/push", "application/json", http.StatusNoContent},
		{"/loki/api/v1/push", "application/x-protobuf", http.StatusNoContent},
	} {
		if status, _, out := h.ingestCall(c.path, "Bearer "+tok, c.ctype, ""); status != c.want {
			t.Errorf("%s (%s), empty body: status %d %v, want %d", c.path, c.ctype, status, out, c.want)
		}
	}
	var out map[string]string
	if got := h.call("alice", "POST", "/api/v1/requests", nil, &out); got != http.StatusBadRequest ||
		out["error"] != "request body is empty; expected a JSON object" {
		t.Errorf("empty request body: %d %v, want 400 saying the body is empty", got, out)
	}
}

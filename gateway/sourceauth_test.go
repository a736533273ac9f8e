package gateway

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// ingestCall posts body to an ingest route with the given Authorization
// header value (none when empty) and returns the status, content type and
// decoded JSON error body.
func (h *harness) ingestCall(path, authz, contentType, body string) (int, string, map[string]string) {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.url+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]string
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, resp.Header.Get("Content-Type"), out
}

// stagingSource makes a source bound to checkout/staging only and returns
// its view (with the token).
func (h *harness) stagingSource(name string) api.Source {
	h.t.Helper()
	v, err := h.srv.CreateSource(context.Background(), systemActor, name, "",
		[]store.StreamRef{{Service: "checkout", Env: "staging"}})
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

// ingestRoutes are the source-authenticated routes with a body each accepts
// for checkout/prod.
var ingestRoutes = []struct{ path, contentType, body string }{
	{"/api/v1/ingest?service=checkout&env=prod", "application/x-ndjson", `{"message":"hi"}` + "\n"},
	{"/v1/logs", "application/json", `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}},{"key":"deployment.environment","value":{"stringValue":"prod"}}]},"scopeLogs":[{"logRecords":[{"body":{"stringValue":"hi"}}]}]}]}`},
	{"/loki/api/v1/push", "application/json", `{"streams":[{"stream":{"service_name":"checkout","env":"prod"},"values":[["1772273472345678901","hi"]]}]}`},
}

// TestSourceTokenRefusedAudited: on every ingest route a missing, unknown or
// revoked source token is 401 JSON and an auth.failed event with actor kind
// source; the trail keeps a fingerprint of a generated-looking token, never
// the token, and never hashes a token of another shape.
func TestSourceTokenRefusedAudited(t *testing.T) {
	h := newHarness(t)
	revoked := h.stagingSource("old shipper")
	if got := h.call("carol", "POST", "/api/v1/sources/"+revoked.ID+"/revoke", nil, nil); got != http.StatusOK {
		t.Fatalf("revoke source: status %d", got)
	}
	unknown := NewSourceToken()
	const password = "hunter2"
	cases := []struct {
		name, authz, reason, fingerprint, actorID string
	}{
		{"none", "", sourceReasonNoCredentials, "", ""},
		{"basic", "Basic YWxpY2U6YWxpY2U=", sourceReasonNoCredentials, "", ""},
		{"unknown", "Bearer " + unknown, sourceReasonUnknown, HashSourceToken(unknown)[:12], ""},
		{"not shaped like a source token", "Bearer " + password, sourceReasonUnknown, "", ""},
		{"revoked", "Bearer " + revoked.Token, sourceReasonRevoked, HashSourceToken(revoked.Token)[:12], revoked.ID},
	}
	for _, rt := range ingestRoutes {
		for _, c := range cases {
			// A window apart, each failure is the first of its burst and
			// recorded at once.
			h.clock.Advance(sourceFailureWindow)
			path := rt.path
			status, ct, out := h.ingestCall(path, c.authz, rt.contentType, rt.body)
			if status != http.StatusUnauthorized || !strings.HasPrefix(ct, "application/json") || out["error"] == "" {
				t.Errorf("%s, %s: status %d %q %v; want 401 JSON with an error", path, c.name, status, ct, out)
			}
		}
	}
	evs := h.events(audit.Query{Action: "auth.failed"})
	var source []audit.Event
	for _, ev := range evs {
		if ev.Actor.Kind == audit.ActorSource {
			source = append(source, ev)
		}
	}
	byRouteReason := map[string]audit.Event{}
	for _, ev := range source {
		route, _ := ev.Details["route"].(string)
		byRouteReason[route+" "+ev.Reason] = ev
		raw, _ := json.Marshal(ev)
		for _, secret := range []string{unknown, password, revoked.Token} {
			if strings.Contains(string(raw), secret) {
				t.Errorf("event %s contains a presented token", raw)
			}
		}
		if ev.Outcome != audit.OutcomeFailure || ev.SourceAddr == "" {
			t.Errorf("event %s: want outcome failure with a source address", raw)
		}
	}
	for _, rt := range ingestRoutes {
		route := strings.Split(rt.path, "?")[0]
		for _, reason := range []string{sourceReasonNoCredentials, sourceReasonUnknown, sourceReasonRevoked} {
			ev, ok := byRouteReason[route+" "+reason]
			if !ok {
				t.Errorf("%s: no auth.failed with actor kind source and reason %s", route, reason)
				continue
			}
			if reason == sourceReasonRevoked && (ev.Actor.ID != revoked.ID || ev.Target.SourceID != revoked.ID) {
				t.Errorf("%s revoked: actor %+v target %+v; want the revoked source", route, ev.Actor, ev.Target)
			}
		}
	}
	// The first unknown token was shaped like a generated one: fingerprinted.
	found := false
	for _, ev := range source {
		if ev.Details["token_sha256_prefix"] == HashSourceToken(unknown)[:12] {
			found = true
		}
		if ev.Details["token_sha256_prefix"] == HashSourceToken(password)[:12] {
			t.Errorf("a token not shaped like a source token was fingerprinted: %v", ev.Details)
		}
	}
	if !found {
		t.Errorf("no event carries the unknown token's fingerprint")
	}
}

// TestSourceFailuresAggregated: a burst of bad source tokens from one
// address is one event at once and one with the count when the window
// ends, like failed sign-ins.
func TestSourceFailuresAggregated(t *testing.T) {
	h := newHarness(t)
	rt := ingestRoutes[0]
	for range 5 {
		if status, _, _ := h.ingestCall(rt.path, "Bearer "+NewSourceToken(), rt.contentType, rt.body); status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", status)
		}
	}
	sourceFailed := func() []audit.Event {
		var out []audit.Event
		for _, ev := range h.events(audit.Query{Action: "auth.failed"}) {
			if ev.Actor.Kind == audit.ActorSource {
				out = append(out, ev)
			}
		}
		return out
	}
	if evs := sourceFailed(); len(evs) != 1 {
		t.Fatalf("after a burst of 5: %d events, want 1 (the first, at once)", len(evs))
	}
	h.clock.Advance(sourceFailureWindow + time.Second)
	h.srv.sourceBursts.flush(false)
	evs := sourceFailed()
	if len(evs) != 2 {
		t.Fatalf("after the window: %d events, want 2", len(evs))
	}
	counts := map[float64]bool{}
	for _, ev := range evs {
		c := toFloat(ev.Details["count"])
		counts[c] = true
		if c == 4 {
			if _, ok := ev.Details["token_sha256_prefix"]; ok {
				t.Errorf("the aggregated event names one token of many: %v", ev.Details)
			}
		}
	}
	if !counts[0] || !counts[4] {
		t.Errorf("counts %v: want the first event (no count) and one with count 4", counts)
	}
}

// TestSourceWrongStreamAudited: a source writing a stream it is not bound
// to is 403 JSON and an ingest.write event, outcome denied, actor kind
// source, on every ingest route.
func TestSourceWrongStreamAudited(t *testing.T) {
	h := newHarness(t)
	src := h.stagingSource("staging shipper")
	for _, rt := range ingestRoutes {
		h.clock.Advance(sourceFailureWindow) // each the first of its burst
		status, ct, out := h.ingestCall(rt.path, "Bearer "+src.Token, rt.contentType, rt.body)
		if status != http.StatusForbidden || !strings.HasPrefix(ct, "application/json") || !strings.Contains(out["error"], "checkout/prod") {
			t.Errorf("%s: status %d %q %v; want 403 JSON naming the stream", rt.path, status, ct, out)
		}
	}
	evs := h.events(audit.Query{Action: "ingest.write", Outcome: audit.OutcomeDenied})
	routes := map[string]bool{}
	for _, ev := range evs {
		if ev.Actor.Kind != audit.ActorSource || ev.Actor.ID != src.ID || ev.Target.Service != "checkout" || ev.Target.Env != "prod" {
			t.Errorf("event actor %+v target %+v: want source %s writing checkout/prod", ev.Actor, ev.Target, src.ID)
		}
		r, _ := ev.Details["route"].(string)
		routes[r] = true
	}
	for _, rt := range ingestRoutes {
		if r := strings.Split(rt.path, "?")[0]; !routes[r] {
			t.Errorf("%s: no ingest.write denied event", r)
		}
	}
}

// toFloat reads a JSON number however the trail decoded it.
func toFloat(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int:
		return float64(n)
	case int64:
		return float64(n)
	case json.Number:
		f, _ := n.Float64()
		return f
	}
	return 0
}

// TestBurstAggregatorBoundsAndClose: beyond max keys, events share one
// overflow burst (memory stays bounded); close records every pending count,
// and after close each event is recorded on its own.
func TestBurstAggregatorBoundsAndClose(t *testing.T) {
	var got []audit.Event
	c := &clock{}
	b := newBurstAggregator(func(_ context.Context, ev audit.Event) error { got = append(got, ev); return nil },
		c.Now, time.Minute, 2)
	ev := func(addr string) audit.Event {
		return audit.Event{Action: "auth.failed", SourceAddr: addr, Details: map[string]any{"detail": "x"}}
	}
	for _, addr := range []string{"a", "a", "b", "c", "d", "d"} {
		b.add(addr, ev(addr))
	}
	// a (first), b (first), c -> overflow (first); a, d and d are counted.
	if len(got) != 3 || got[2].SourceAddr != overflowBurstKey {
		t.Fatalf("recorded %d events (%+v), want a, b and the overflow's first", len(got), got)
	}
	b.close()
	counts := map[string]float64{}
	for _, e := range got[3:] {
		counts[e.SourceAddr] = toFloat(e.Details["count"])
		if d, _ := e.Details["detail"].(string); !strings.HasPrefix(d, "aggregated: ") {
			t.Errorf("summary detail %q, want it marked aggregated", d)
		}
	}
	if want := map[string]float64{"a": 1, overflowBurstKey: 2}; len(counts) != 2 || counts["a"] != 1 || counts[overflowBurstKey] != 2 {
		t.Errorf("summaries %v, want %v", counts, want)
	}
	n := len(got)
	b.add("z", ev("z"))
	b.add("z", ev("z"))
	if len(got) != n+2 {
		t.Errorf("after close: %d events for 2 adds, want each recorded", len(got)-n)
	}
}

// TestSourceFailuresAggregatedPerIPv6Network: an unauthenticated client
// holds a whole IPv6 /64; changing its address within it must not make each
// refusal the first of a new burst (one synchronous trail write each).
func TestSourceFailuresAggregatedPerIPv6Network(t *testing.T) {
	h := newHarness(t)
	for i := range 50 {
		r := httptest.NewRequest("POST", "/api/v1/ingest", nil)
		r = r.WithContext(withClientAddr(r.Context(), fmt.Sprintf("2001:db8:1:2::%x", i+1)))
		h.srv.sourceAuthFailed(r, sourceReasonUnknown, NewSourceToken(), nil)
	}
	var n int
	for _, ev := range h.events(audit.Query{Action: "auth.failed"}) {
		if ev.Actor.Kind == audit.ActorSource {
			n++
		}
	}
	if n != 1 {
		t.Errorf("50 refusals from one /64: %d events at once, want 1", n)
	}
}

// TestBurstOverflowKeepsReasonsApart: past max keys, refusals of different
// reasons or sources are not counted under the first overflowing event's
// reason and source (a flood of unknown tokens must not read as N uses of
// one revoked source's token).
func TestBurstOverflowKeepsReasonsApart(t *testing.T) {
	var got []audit.Event
	c := &clock{}
	b := newBurstAggregator(func(_ context.Context, ev audit.Event) error { got = append(got, ev); return nil },
		c.Now, time.Minute, 1)
	ev := func(addr, reason, src string) audit.Event {
		return audit.Event{Action: "auth.failed", Reason: reason, SourceAddr: addr,
			Actor: audit.Actor{Kind: audit.ActorSource, ID: src}, Details: map[string]any{"detail": "x"}}
	}
	b.add("a", ev("a", sourceReasonUnknown, ""))
	b.add("b", ev("b", sourceReasonRevoked, "src_1")) // overflow
	b.add("c", ev("c", sourceReasonUnknown, ""))      // overflow
	b.add("d", ev("d", sourceReasonUnknown, ""))      // overflow
	b.close()
	total := map[string]float64{}
	for _, e := range got {
		n := toFloat(e.Details["count"])
		if n == 0 {
			n = 1
		}
		total[e.Reason+"|"+e.Actor.ID] += n
	}
	if want := map[string]float64{sourceReasonUnknown + "|": 3, sourceReasonRevoked + "|src_1": 1}; len(total) != 2 ||
		total[sourceReasonUnknown+"|"] != 3 || total[sourceReasonRevoked+"|src_1"] != 1 {
		t.Errorf("refusals recorded per reason|source %v, want %v", total, want)
	}
}

// TestUnverifiedCertificateFailuresAggregatedPerAddress: an unverified
// client certificate's name is the sender's claim; a host presenting a new
// name each time must not make each refusal the first of a new burst (one
// synchronous trail write each).
func TestUnverifiedCertificateFailuresAggregatedPerAddress(t *testing.T) {
	h := newHarness(t)
	for i := range 50 {
		r := httptest.NewRequest("POST", "/api/v1/ingest", nil)
		r = r.WithContext(withClientAddr(r.Context(), "192.0.2.7"))
		leaf := &x509.Certificate{Subject: pkix.Name{CommonName: fmt.Sprintf("forged-%d", i)}}
		h.srv.certAuthFailed(r, "client_certificate", leaf, "signed by an unknown authority")
	}
	var n int
	for _, ev := range h.events(audit.Query{Action: "auth.failed"}) {
		if ev.Actor.Kind == audit.ActorSource {
			n++
		}
	}
	if n != 1 {
		t.Errorf("50 unverified certificates from one address: %d events at once, want 1", n)
	}
}

package main

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
)

// --public-audit-rate and --public-audit-burst reach the public audit
// endpoints: past the burst a client gets 429 with Retry-After, while a
// signed-in route stays open.
func TestPublicAuditRateFlags(t *testing.T) {
	g := startGateway(t, "--public-audit-rate", "0.001", "--public-audit-burst", "3")
	for i := range 3 {
		if st := g.call("GET", "/api/v1/audit/keys", "", nil, nil); st != http.StatusOK {
			t.Fatalf("request %d within the burst: %d", i+1, st)
		}
	}
	resp, err := http.Get(g.url + "/api/v1/audit/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("fourth public request: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := g.call("GET", "/api/v1/audit?limit=1", g.token("carol"), nil, nil); st != http.StatusOK {
		t.Errorf("signed-in audit search after the public limit: %d, want 200", st)
	}
}

func TestPublicAuditRateFlagsRefuseBadValues(t *testing.T) {
	for _, args := range [][]string{
		{"--public-audit-rate", "0"}, {"--public-audit-rate", "-1"}, {"--public-audit-burst", "0.5"},
		{"--public-audit-rate", "+Inf"}, {"--public-audit-burst", "NaN"},
	} {
		_, err := parseServeConfig(append([]string{"--dev"}, args...), func(string) string { return "" }, &strings.Builder{})
		ee, ok := errors.AsType[*exitcode.Error](err)
		if !ok || ee.Code != exitcode.Usage || !strings.Contains(err.Error(), "--public-audit") {
			t.Errorf("%v: %v, want a usage error naming the flag", args, err)
		}
	}
}

package main

import (
	"net/http"
	"testing"
	"time"
)

// TestAuditAdministration: published verifier keys, legal hold blocking a
// purge, a purge that keeps the trail verifiable, and key rotation — all
// for loggate-admins only.
func TestAuditAdministration(t *testing.T) {
	g := startGateway(t)
	alice, carol := g.token("alice"), g.token("carol")
	g.call("POST", "/api/v1/requests", alice, map[string]any{"service": "checkout", "env": "staging",
		"duration": "5m", "reason": "INC-3 before the purge"}, nil)

	var keys struct {
		VerifierKeys []string `json:"verifier_keys"`
	}
	if code := g.call("GET", "/api/v1/audit/keys", "", nil, &keys); code != 200 || len(keys.VerifierKeys) != 1 {
		t.Fatalf("public keys: %d %+v", code, keys)
	}
	if code := g.call("POST", "/api/v1/audit/legal-hold", alice, map[string]any{"on": true, "reason": "x"}, nil); code != http.StatusForbidden {
		t.Errorf("alice setting a legal hold: %d, want 403", code)
	}
	if code := g.call("POST", "/api/v1/audit/legal-hold", carol, map[string]any{"reason": "no on"}, nil); code != http.StatusBadRequest {
		t.Errorf("legal hold without on: %d, want 400", code)
	}
	var hold struct {
		On bool `json:"on"`
	}
	if code := g.call("POST", "/api/v1/audit/legal-hold", carol, map[string]any{"on": true, "reason": "LIT-7 preserve"}, &hold); code != 200 || !hold.On {
		t.Fatalf("set legal hold: %d %+v", code, hold)
	}
	time.Sleep(10 * time.Millisecond)
	before := time.Now().UTC().Format(time.RFC3339Nano)
	if code := g.call("POST", "/api/v1/audit/purge", carol, map[string]any{"before": before}, nil); code != http.StatusConflict {
		t.Errorf("purge under legal hold: %d, want 409", code)
	}
	if code := g.call("POST", "/api/v1/audit/legal-hold", carol, map[string]any{"on": false, "reason": "LIT-7 closed"}, &hold); code != 200 || hold.On {
		t.Fatalf("release legal hold: %d %+v", code, hold)
	}
	var purged struct {
		Count int64 `json:"count"`
	}
	if code := g.call("POST", "/api/v1/audit/purge", carol, map[string]any{"before": before}, &purged); code != 200 || purged.Count == 0 {
		t.Fatalf("purge: %d %+v, want some events purged", code, purged)
	}
	if code := g.call("POST", "/api/v1/audit/rotate-key", carol, nil, &keys); code != 200 || len(keys.VerifierKeys) != 2 {
		t.Fatalf("rotate key: %d %+v", code, keys)
	}
	var verify struct {
		Verified bool `json:"verified"`
	}
	if code := g.call("GET", "/api/v1/audit/verify?fresh=true", carol, nil, &verify); code != 200 || !verify.Verified {
		t.Errorf("verify after purge and rotation: %d %+v", code, verify)
	}
	var trail struct {
		Items []auditJSON `json:"items"`
	}
	g.call("GET", "/api/v1/audit?action=retention.*", carol, nil, &trail)
	// The hold that was set before the purge horizon was purged with the rest.
	if !hasAction(trail.Items, "retention.purged") || !hasAction(trail.Items, "retention.legal_hold") || len(trail.Items) != 2 {
		t.Errorf("retention events = %+v, want the release of the hold and the purge", trail.Items)
	}
}

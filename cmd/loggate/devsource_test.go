package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestRevokedDevSourceTokenStaysRevoked: revoking the fixed demo source
// token and restarting with the same --dev-source-token must not bring the
// token back to life.
func TestRevokedDevSourceTokenStaysRevoked(t *testing.T) {
	data := t.TempDir()
	g := startGatewayData(t, data, "--dev-source-token", "lgs_fixed_demo_token")
	carol := g.token("carol")
	var list struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if code := g.call("GET", "/api/v1/sources", carol, nil, &list); code != 200 || len(list.Items) != 1 {
		t.Fatalf("sources: %d %+v", code, list)
	}
	if code := g.call("POST", "/api/v1/sources/"+list.Items[0].ID+"/revoke", carol, nil, nil); code != 200 {
		t.Fatalf("revoke source: %d", code)
	}
	if code := g.ingest("checkout", "prod", "lgs_fixed_demo_token", `{"message":"x"}`); code != 401 {
		t.Errorf("ingest with the revoked token: %d, want 401", code)
	}
	g.stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runServe(ctx, []string{"--dev", "--listen", "127.0.0.1:0", "--dev-demo-logs=false", "--log-level", "error",
		"--dev-source-token", "lgs_fixed_demo_token", "--data", data}, func(string) string { return "" }, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("restart with the revoked demo token: %v, want a refusal saying it was revoked", err)
	}
}

// TestRevokedSavedDemoTokenIsReplaced: without a fixed token, a revoked
// demo source gets a new token at the next start instead of reviving.
func TestRevokedSavedDemoTokenIsReplaced(t *testing.T) {
	data := t.TempDir()
	g := startGatewayData(t, data)
	old := g.r.SourceTokens["checkout/staging"]
	carol := g.token("carol")
	var list struct {
		Items []struct {
			ID      string `json:"id"`
			Streams []struct {
				Env string `json:"env"`
			} `json:"streams"`
		} `json:"items"`
	}
	g.call("GET", "/api/v1/sources", carol, nil, &list)
	for _, src := range list.Items {
		if src.Streams[0].Env == "staging" {
			if code := g.call("POST", "/api/v1/sources/"+src.ID+"/revoke", carol, nil, nil); code != 200 {
				t.Fatalf("revoke: %d", code)
			}
		}
	}
	g.stop()
	g2 := startGatewayData(t, data)
	fresh := g2.r.SourceTokens["checkout/staging"]
	if fresh == "" || fresh == old {
		t.Fatalf("demo token after restart = %q, want a new one (old %q)", fresh, old)
	}
	if code := g2.ingest("checkout", "staging", old, `{"message":"x"}`); code != 401 {
		t.Errorf("old revoked token: %d, want 401", code)
	}
	if code := g2.ingest("checkout", "staging", fresh, `{"message":"x"}`); code != 200 {
		t.Errorf("new demo token: %d, want 200", code)
	}
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/loggate/loggate/gateway"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// seedDemo (--dev) creates the demo sources for checkout/staging and
// checkout/prod and keeps their tokens for the banner and the demo source.
func (p *serveParts) seedDemo(ctx context.Context) (func(), error) {
	c, srv := p.c, p.srv
	p.tokens = map[string]string{}
	if !c.Dev {
		return nil, nil
	}
	system := audit.Actor{Kind: audit.ActorSystem, Subject: "loggate"}
	if c.DevSourceToken != "" {
		// One source, bound to both demo streams, with the fixed token.
		streams := []store.StreamRef{{Service: "checkout", Env: "staging"}, {Service: "checkout", Env: "prod"}}
		if _, err := srv.CreateSource(ctx, system, "demo checkout", c.DevSourceToken, streams); err != nil {
			return nil, fmt.Errorf("create demo source: %w", err)
		}
		p.tokens["checkout/staging"], p.tokens["checkout/prod"] = c.DevSourceToken, c.DevSourceToken
		return nil, nil
	}
	for _, env := range []string{"staging", "prod"} {
		stream := []store.StreamRef{{Service: "checkout", Env: env}}
		tok, err := devSourceToken(c, env, false)
		if err == nil {
			_, err = srv.CreateSource(ctx, system, "demo checkout/"+env, tok, stream)
		}
		if err != nil {
			// The saved demo token was revoked: mint a new one.
			if tok, err = devSourceToken(c, env, true); err == nil {
				_, err = srv.CreateSource(ctx, system, "demo checkout/"+env, tok, stream)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("create demo source: %w", err)
		}
		p.tokens["checkout/"+env] = tok
	}
	return nil, nil
}

// devSourceToken is the demo source's token kept in the data directory
// (mode 0600) so it survives restarts, created once, or anew when fresh.
func devSourceToken(c *serveConfig, env string, fresh bool) (string, error) {
	path := filepath.Join(c.Data, "keys", "dev-source-checkout-"+env+".token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 && !fresh {
		return strings.TrimSpace(string(b)), nil
	}
	tok := gateway.NewSourceToken()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save demo source token: %w", err)
	}
	return tok, nil
}

// demoSource (--dev --dev-demo-logs) starts runDemoSource; the closer stops
// it and waits for it to return.
func (p *serveParts) demoSource(context.Context) (func(), error) {
	if !p.c.Dev || !p.c.DevDemoLogs {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(p.runCtx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runDemoSource(ctx, p.ingestURL(), p.tokens, p.log.With("component", "demo-source"))
	}()
	return func() { cancel(); <-done }, nil
}

// runDemoSource writes realistic checkout logs to the dev gateway's own
// ingest endpoint, a few lines per second per environment, some carrying
// fake secrets for the redaction rules to catch. It is the demo service of
// demo_service.go: its debug lines appear only while someone watches with
// level debug.
func runDemoSource(ctx context.Context, baseURL string, tokens map[string]string, log *slog.Logger) {
	runDemoService(ctx, baseURL, tokens, log)
}

func demoLine(rng *rand.Rand, env string, n int) map[string]any {
	order := fmt.Sprintf("ord_%06d", 100000+rng.IntN(900000))
	user := fmt.Sprintf("u%04d", rng.IntN(10000))
	trace := fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
	base := map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano), "trace_id": trace[:32],
		"pod":        fmt.Sprintf("checkout-%s-7d9f8-%c%c", env, 'a'+rune(rng.IntN(26)), 'a'+rune(rng.IntN(26))),
		"request_id": fmt.Sprintf("req-%d", n)}
	ms := 20 + rng.IntN(400)
	switch k := rng.IntN(20); {
	case k < 9:
		base["level"], base["message"] = "info", fmt.Sprintf("POST /api/checkout 200 %dms order=%s user=%s", ms, order, user)
		base["http.status"], base["duration_ms"] = 200, ms
	case k < 12:
		base["level"], base["message"] = "debug", fmt.Sprintf("cart recalculated: %d items, subtotal=%d.%02d EUR", 1+rng.IntN(6), rng.IntN(300), rng.IntN(100))
	case k < 14:
		base["level"], base["message"] = "warn", fmt.Sprintf("payment provider slow: %dms (threshold 800ms) order=%s", 800+rng.IntN(2000), order)
	case k < 16:
		base["level"], base["message"] = "error", fmt.Sprintf("POST /api/checkout 502 order=%s: upstream payments timed out after 3000ms", order)
		base["http.status"] = 502
	case k < 17:
		// Fake secrets: redaction must mask these at ingest.
		base["level"], base["message"] = "debug", "calling payments with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjaGVja291dCJ9.c2lnbmF0dXJlX2Zha2VfZGVtbw"
	case k < 18:
		base["level"], base["message"] = "warn", "card declined for card 4111 1111 1111 1111 order="+order
	case k < 19:
		base["level"], base["message"] = "info", "retrying webhook"
		base["api_key"] = "sk_live_51DemoFakeKeyDoNotUse0000000000"
	default:
		base["level"], base["message"] = "info", fmt.Sprintf("email receipt queued for %s@example.com order=%s", user, order)
	}
	return base
}

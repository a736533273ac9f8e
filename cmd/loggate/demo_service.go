package main

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/loggate/loggate/gateway/sdk/slogship"
)

// runDemoService is the demo checkout service as a real service would be
// written: it logs with log/slog through gateway/sdk/slogship, at info.
// Its debug lines reach loggate only while someone watches a grant with
// level debug (try checkout/staging, level debug, in the browser).
func runDemoService(ctx context.Context, baseURL string, tokens map[string]string, log *slog.Logger) {
	type env struct {
		ship *slogship.Shipper
		log  *slog.Logger
	}
	var envs []env
	for _, name := range []string{"staging", "prod"} {
		tok := tokens["checkout/"+name]
		if tok == "" {
			continue
		}
		ship, err := slogship.New(slogship.Config{URL: baseURL, Token: tok, Service: "checkout", Env: name,
			Instance: "demo-checkout-" + name, Logger: log})
		if err != nil {
			log.Warn("demo service", "err", err)
			return
		}
		// The demo has no local log to keep; a real service passes its own handler.
		envs = append(envs, env{ship, slog.New(ship.Handler(slog.NewTextHandler(io.Discard, nil)))})
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		for _, e := range envs {
			_ = e.ship.Close(closeCtx)
		}
	}()
	tick := time.NewTicker(400 * time.Millisecond)
	defer tick.Stop()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))
	tenants := []string{"acme", "globex", "initech"}
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for i, e := range envs {
			for range 1 + rng.IntN(3) {
				n++
				line := demoLine(rng, []string{"staging", "prod"}[i], n)
				lvl := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo,
					"warn": slog.LevelWarn, "error": slog.LevelError}[line["level"].(string)]
				attrs := []slog.Attr{slog.String("tenant", tenants[rng.IntN(len(tenants))])}
				for k, v := range line {
					if k != "level" && k != "message" && k != "time" {
						attrs = append(attrs, slog.Any(k, v))
					}
				}
				e.log.LogAttrs(ctx, lvl, line["message"].(string), attrs...)
			}
		}
	}
}

// Command debugsvc is a small service for loggate's tests: it logs one
// debug and one info line per tick through slogship, alternating the
// tenant attribute between acme and globex. Its own log (info and up)
// goes to stdout.
//
// Environment: LOGGATE_URL, LOGGATE_TOKEN, SERVICE, ENV, TICK (a Go
// duration, default 20ms).
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/loggate/loggate/gateway/sdk/slogship"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tick, err := time.ParseDuration(os.Getenv("TICK"))
	if err != nil {
		tick = 20 * time.Millisecond
	}
	ship, err := slogship.New(slogship.Config{URL: os.Getenv("LOGGATE_URL"), Token: os.Getenv("LOGGATE_TOKEN"),
		Service: os.Getenv("SERVICE"), Env: os.Getenv("ENV"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		slog.New(slog.NewTextHandler(os.Stderr, nil)).Error("slogship", "err", err)
		os.Exit(2)
	}
	log := slog.New(ship.Handler(slog.NewTextHandler(os.Stdout, nil)))
	t := time.NewTicker(tick)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = ship.Close(closeCtx)
			cancel()
			return
		case <-t.C:
		}
		tenant := "acme"
		if n%2 == 1 {
			tenant = "globex"
		}
		log.Debug("debug tick", "n", n, "tenant", tenant, "cart_items", n%7)
		log.Info("info tick", "n", n, "tenant", tenant)
	}
}

package slogship_test

import (
	"context"
	"log/slog"
	"os"

	"github.com/loggate/loggate/gateway/sdk/slogship"
)

// A service wraps its own handler. Info and up go where they always went
// and to loggate; debug lines are emitted only while an approved person
// watches a debug grant of checkout/prod.
func Example() {
	ship, err := slogship.New(slogship.Config{URL: "https://loggate.example.com", Token: os.Getenv("LOGGATE_TOKEN"),
		Service: "checkout", Env: "prod"})
	if err != nil {
		return
	}
	defer ship.Close(context.Background())
	logger := slog.New(ship.Handler(slog.NewJSONHandler(os.Stderr, nil)))

	logger.Info("order placed", "order", "ord_123456", "tenant", "acme")
	logger.Debug("cart recalculated", "items", 3, "tenant", "acme") // only while someone watches
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway"
	"github.com/loggate/loggate/gateway/notify"
)

// notifyKinds are the event kinds --webhook-events may name.
var notifyKinds = []string{notify.KindRequestCreated, notify.KindRequestApproved, notify.KindRequestDenied,
	notify.KindRequestCancelled, notify.KindBreakGlass, notify.KindGrantExpiring, notify.KindGrantRevoked,
	notify.KindAlertFired, notify.KindAlertResolved}

// serveNotifier is the webhook notifier as serve wires it: nil-safe, and
// counting attempts in the gateway's metrics once the gateway exists
// (deliveries left over from the last run may start before it does).
type serveNotifier struct {
	n   *notify.Notifier // nil without --webhook-url
	srv atomic.Pointer[gateway.Server]
}

// newNotifier opens the outbox and starts delivery when --webhook-url is
// set; without it, notifications are off. The outbox is a SQLite file in
// the data directory, or, with --redis (rc non-nil), a Redis Stream shared
// by the replicas, each message delivered by one of them.
func newNotifier(ctx context.Context, c *serveConfig, publicURL string, rc *redis.Client, log *slog.Logger) (*serveNotifier, error) {
	sn := &serveNotifier{}
	if c.WebhookURL == "" {
		return sn, nil
	}
	if c.WebhookFormat != notify.FormatJSON && c.WebhookFormat != notify.FormatSlack {
		return nil, exitcode.Usagef("--webhook-format must be json or slack")
	}
	kinds := splitList(c.WebhookEvents)
	for _, k := range kinds {
		if !slices.Contains(notifyKinds, k) {
			return nil, exitcode.Usagef("--webhook-events: unknown event %q (known: %v)", k, notifyKinds)
		}
	}
	n, err := notify.New(ctx, notify.Config{
		Path:        filepath.Join(c.Data, "notify-outbox.db"),
		Redis:       rc,
		RedisPrefix: redisPrefix,
		Targets:     []notify.Target{{URL: c.WebhookURL, Secret: c.webhookSecret, Kinds: kinds, Format: c.WebhookFormat}},
		PublicURL:   publicURL,
		OnAttempt:   sn.count,
		Logger:      log.With("component", "notify"),
	})
	if err != nil {
		return nil, fmt.Errorf("notifications: %w", err)
	}
	if c.webhookSecret == "" && c.WebhookFormat == notify.FormatJSON {
		log.Warn("webhook notifications are unsigned: set --webhook-secret-file or LOGGATE_WEBHOOK_SECRET")
	}
	sn.n = n
	return sn, nil
}

// Notifier is what gateway.Config takes: nil when notifications are off.
func (sn *serveNotifier) Notifier() gateway.Notifier {
	if sn.n == nil {
		return nil
	}
	return sn.n
}

// bind starts counting attempts in srv's metrics.
func (sn *serveNotifier) bind(srv *gateway.Server) { sn.srv.Store(srv) }

func (sn *serveNotifier) count(kind, outcome string) {
	if srv := sn.srv.Load(); srv != nil {
		srv.NotificationAttempt(kind, outcome)
	}
}

// Close drains and closes the outbox.
func (sn *serveNotifier) Close() error {
	if sn.n == nil {
		return nil
	}
	return sn.n.Close()
}

// notifyRedis is the Redis client the notification outbox shares with the
// other replicas; nil on one machine.
func (sp *stateParts) notifyRedis() *redis.Client {
	if sp.redis == nil {
		return nil
	}
	return sp.redis.client
}

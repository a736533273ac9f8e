package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway"
	"github.com/loggate/loggate/gateway/alert"
)

// urlList is a repeatable, comma-separated flag.
type urlList []string

func (l *urlList) String() string { return strings.Join(*l, ",") }
func (l *urlList) Set(v string) error {
	*l = append(*l, splitList(v)...)
	return nil
}

func (c *serveConfig) alertFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AlertRules, "alert-rules", "", "YAML or JSON file of alert rules, hot-reloaded and editable by admins (created with the default audit rules if missing; default: the built-in audit rules, read-only)")
	fs.Var(&c.AlertmanagerURLs, "alertmanager-url", "Prometheus Alertmanager base URL receiving alerts (API v2); repeatable or comma-separated")
}

// serveAlerts is alerting as serve wires it.
type serveAlerts struct {
	engine *alert.Engine
	store  *alert.Store // alerts on one machine, and the Alertmanager outbox
	// kept is where alerts are kept: store, or Redis with --redis.
	kept   gateway.AlertStore
	shared bool
	redis  *redis.Client       // with --redis: the shared alerts and Alertmanager outbox
	am     *alert.Alertmanager // nil without --alertmanager-url
	file   string              // the rules file; "" with the built-in rules
}

// newAlerts loads the rules (failing start-up on a bad file), opens the
// alert store in the data directory and the Alertmanager outbox.
func newAlerts(ctx context.Context, c *serveConfig, sp *stateParts, reg *prometheus.Registry, log *slog.Logger) (*serveAlerts, error) {
	sa := &serveAlerts{file: c.AlertRules}
	body := alert.DefaultRules
	name := "built-in default rules"
	if c.AlertRules != "" {
		b, err := os.ReadFile(c.AlertRules)
		if errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(c.AlertRules, alert.DefaultRules, 0o600); err != nil {
				return nil, fmt.Errorf("alert rules: create %s: %w", c.AlertRules, err)
			}
			b = alert.DefaultRules
		} else if err != nil {
			return nil, fmt.Errorf("alert rules: %w", err)
		}
		body, name = b, c.AlertRules
	}
	set, err := alert.Parse(name, body)
	if err != nil {
		return nil, err
	}
	st, err := alert.OpenStore(ctx, filepath.Join(c.Data, "alerts.db"))
	if err != nil {
		return nil, err
	}
	sa.store = st
	ecfg := alert.EngineConfig{Logger: log.With("component", "alert")}
	if rc := sp.notifyRedis(); rc != nil {
		// Replicas count together; the lease holder alone fires, and a
		// new leader carries on with the alerts kept in Redis.
		kept := alert.NewRedisStore(rc, redisPrefix)
		ecfg.Shared = &alert.Shared{Client: rc, Prefix: redisPrefix, ReplicaID: sp.replicaID(), Store: kept}
		sa.kept, sa.shared, sa.redis = kept, true, rc
	} else {
		sa.kept = st
	}
	sa.engine = alert.NewEngine(ecfg)
	sa.engine.SetRules(set)
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_alert_matches_dropped_total",
		Help: "Rule matches not counted because the rule already tracked its maximum of groups."},
		func() float64 { return float64(sa.engine.Dropped()) }))
	return sa, nil
}

// startReceivers builds the Alertmanager receiver once the gateway exists
// (its links point at the gateway).
func (sa *serveAlerts) receivers(c *serveConfig, link func(alert.Alert) string, reg *prometheus.Registry, log *slog.Logger) ([]gateway.AlertReceiver, error) {
	if len(c.AlertmanagerURLs) == 0 {
		return nil, nil
	}
	// With --redis the replicas share one outbox: any of them delivers a
	// row, one at a time, and a dead one's rows are taken over.
	am, err := alert.NewAlertmanager(alert.AlertmanagerConfig{URLs: append([]string(nil), c.AlertmanagerURLs...),
		Store: sa.store, Redis: sa.redis, RedisPrefix: redisPrefix, GeneratorURL: link, Logger: log.With("component", "alertmanager")})
	if err != nil {
		return nil, exitcode.Usagef("--alertmanager-url: %v", err)
	}
	sa.am = am
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_alertmanager_delivered_total",
			Help: "Alert states delivered to Alertmanager."}, func() float64 { return float64(am.Delivered()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_alertmanager_failed_attempts_total",
			Help: "Failed Alertmanager delivery attempts (retried with backoff)."}, func() float64 { return float64(am.Failed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_alertmanager_dropped_total",
			Help: "Alert states dropped: outbox full or refused by Alertmanager."}, func() float64 { return float64(am.Dropped()) }),
	)
	return []gateway.AlertReceiver{am}, nil
}

// run evaluates, delivers and watches the rules file until ctx ends; the
// returned func waits for those goroutines.
func (sa *serveAlerts) run(ctx context.Context, srv *gateway.Server, log *slog.Logger) (wait func()) {
	var wg sync.WaitGroup
	wg.Go(func() { sa.engine.Run(ctx) })
	if sa.am != nil {
		wg.Go(func() { sa.am.Run(ctx) })
	}
	if sa.file != "" {
		wg.Go(func() { sa.watch(ctx, srv, log) })
	}
	return wg.Wait
}

// watch polls the rules file and reloads it when its bytes change.
func (sa *serveAlerts) watch(ctx context.Context, srv *gateway.Server, log *slog.Logger) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	last, _ := os.ReadFile(sa.file)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(sa.file)
		if err != nil || bytes.Equal(b, last) {
			continue
		}
		last = b
		if err := srv.ReloadAlertRules(ctx); err != nil {
			log.Error("alert rules rejected; the running rules stay", "err", err)
		}
	}
}

func (sa *serveAlerts) Close() error { return sa.store.Close() }

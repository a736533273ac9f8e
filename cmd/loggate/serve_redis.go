package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/cluster"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/store"
)

// redisPrefix namespaces every key loggate writes in Redis.
const redisPrefix = "loggate:"

// redisParts is the shared-state wiring for --redis: one client, and on it
// the state store, the live log feed, the audit trail and the control
// channel between replicas.
type redisParts struct {
	client  *redis.Client
	backend *store.Redis
	feed    *cluster.Feed
	audit   *cluster.Audit
	control *cluster.Control
	// weak is set when --redis-accept-weak-durability let a Redis that does
	// not fsync every write (or hides its configuration) through.
	weak error
	log  *slog.Logger
	// replicaID is this replica's stable id (--data/replica-id): start-up
	// recovery closes only the interrupted views it recorded.
	replicaID string
}

// loadReplicaID returns the id saved in dir/replica-id, creating it on
// first start. Each replica needs its own --data directory.
func loadReplicaID(dir string) (string, error) {
	path := filepath.Join(dir, "replica-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id == "" || strings.ContainsAny(id, " \t\n") {
			return "", fmt.Errorf("replica id: %s holds %q", path, b)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("replica id: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	id := cluster.NewReplicaID()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	return id, nil
}

// wireRedis connects to --redis and checks it persists every write,
// refusing to start otherwise unless --redis-accept-weak-durability.
func wireRedis(ctx context.Context, c *serveConfig, retention func(env string) logs.Retention, log *slog.Logger) (*redisParts, error) {
	if c.SessionKeyFile == "" {
		// A key generated in each replica's --data would make a session
		// from one replica invalid on the others.
		return nil, exitcode.Usagef("--redis needs --session-key-file (or LOGGATE_SESSION_KEY_FILE): every replica must share the same session keys")
	}
	if c.AuditSigningKeyFile == "" {
		// Checkpoints signed with a key generated per replica would not
		// verify against one another.
		return nil, exitcode.Usagef("--redis needs --audit-signing-key-file (or LOGGATE_AUDIT_SIGNING_KEY_FILE): every replica must sign audit checkpoints with the same key")
	}
	auditKey, err := cluster.LoadSigningKey(c.AuditSigningKeyFile)
	if err != nil {
		return nil, exitcode.Usagef("--audit-signing-key-file: %v", err)
	}
	client, err := cluster.Dial(c.Redis)
	if err != nil {
		return nil, exitcode.Usagef("--redis: %v", err)
	}
	p := &redisParts{client: client, log: log}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	if err := cluster.CheckDurability(pingCtx, client); err != nil {
		if !errors.Is(err, cluster.ErrWeakDurability) || !c.RedisAcceptWeakFsync {
			client.Close()
			if errors.Is(err, cluster.ErrWeakDurability) {
				return nil, fmt.Errorf("redis: %w (acknowledged audit events could be lost in a crash; "+
					"set appendonly yes and appendfsync always, or pass --redis-accept-weak-durability for a managed Redis)", err)
			}
			return nil, fmt.Errorf("redis: %w", err)
		}
		p.weak = err
		log.Warn("Redis durability is weaker than required; accepted by --redis-accept-weak-durability", "err", err)
	}
	if p.backend, err = store.NewRedis(store.RedisConfig{Client: client, Prefix: redisPrefix}); err != nil {
		return nil, err
	}
	if p.feed, err = cluster.NewFeed(cluster.FeedConfig{Client: client, Prefix: redisPrefix, Retention: retention,
		Logger: log.With("component", "feed"), Keys: c.backlogKeys}); err != nil {
		return nil, err
	}
	if err := p.feed.CheckKeys(ctx); err != nil {
		return nil, backlogKeyError(err)
	}
	if p.replicaID, err = loadReplicaID(c.Data); err != nil {
		return nil, err
	}
	if p.audit, err = cluster.NewAudit(cluster.AuditConfig{Client: client, Prefix: redisPrefix, SigningKey: auditKey,
		ReplicaID: p.replicaID, Logger: log.With("component", "audit")}); err != nil {
		return nil, err
	}
	if p.control, err = cluster.NewControl(cluster.ControlConfig{Client: client, Prefix: redisPrefix,
		Logger: log.With("component", "control")}); err != nil {
		return nil, err
	}
	return p, nil
}

// Close closes the client.
func (p *redisParts) Close() error { return p.client.Close() }

// hubConfig points the hub at the shared feed: seqs from Redis, backfill
// and resume from the Redis streams.
func (p *redisParts) hubConfig(cfg logs.HubConfig) logs.HubConfig {
	cfg.Sequencer = p.feed
	cfg.Backlog = p.feed
	return cfg
}

// Publish implements gateway.Broadcaster.
func (p *redisParts) Publish(ctx context.Context, ev gateway.ControlEvent) error {
	if ev.Kind == gateway.ControlLevels {
		b, err := json.Marshal(ev.Levels)
		if err != nil {
			return fmt.Errorf("publish levels: %w", err)
		}
		return p.control.PublishPayload(ctx, ev.Kind, b)
	}
	target := ev.GrantID
	if ev.Kind == gateway.ControlSessionEnded {
		target = ev.SessionID // the message's target id names the session
	}
	return p.control.Publish(ctx, ev.Kind, target, ev.Reason, ev.ExpiresAt)
}

var _ gateway.Broadcaster = (*redisParts)(nil)

// readyChecks report Redis and the feed reader in /readyz.
func (p *redisParts) readyChecks() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"redis": func(ctx context.Context) error { return p.client.Ping(ctx).Err() },
		"log_feed": func(context.Context) error {
			return p.feed.Healthy()
		},
	}
}

// start runs the feed reader and the control subscription until ctx ends,
// and records an accepted weak durability in the audit trail. The returned
// function waits for the goroutines.
func (p *redisParts) start(ctx context.Context, srv *gateway.Server, hub *logs.Hub) (wait func()) {
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := p.feed.Run(ctx, hub); err != nil {
			p.log.Error("log feed stopped", "err", err)
		}
	}()
	ready := make(chan struct{})
	go func() {
		defer func() { done <- struct{}{} }()
		err := p.control.Subscribe(ctx, ready, func(m cluster.Message) {
			ev := gateway.ControlEvent{Kind: m.Kind, GrantID: m.GrantID, Reason: m.Reason, ExpiresAt: m.ExpiresAt}
			if m.Kind == gateway.ControlLevels {
				var snap gateway.LevelSnapshot
				if err := json.Unmarshal(m.Payload, &snap); err != nil {
					p.log.Warn("ignoring malformed levels message", "replica", m.Replica, "err", err)
					return
				}
				ev.Levels = &snap
			}
			if m.Kind == gateway.ControlSessionEnded {
				ev.SessionID, ev.GrantID = m.GrantID, ""
			}
			srv.ApplyControl(ev)
		})
		if err != nil {
			p.log.Error("control subscription stopped", "err", err)
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		p.log.Warn("control subscription not ready after 5s; continuing")
	}
	if p.weak != nil {
		_, err := p.audit.Append(ctx, audit.Event{Action: "config.weak_durability", Outcome: audit.OutcomeSuccess,
			Actor:   audit.Actor{Kind: audit.ActorSystem, Subject: "loggate"},
			Reason:  "--redis-accept-weak-durability",
			Details: map[string]any{"replica": p.control.ReplicaID(), "check": p.weak.Error()}})
		if err != nil {
			p.log.Error("could not audit the weak durability setting", "err", err)
		}
	}
	return func() { <-done; <-done }
}

// stateParts are the audit trail, the state store and the log hub, on local
// files (one machine) or on Redis (--redis, several replicas).
type stateParts struct {
	audit gateway.Auditor
	store *store.Store
	hub   *logs.Hub
	// broadcast is nil on one machine.
	broadcast   gateway.Broadcaster
	readyChecks map[string]func(context.Context) error
	verifyAudit func(ctx context.Context) (audit.Report, error)
	redis       *redisParts // nil on one machine
	closers     []func() error
}

// openState opens the audit trail, the state store and the log hub.
func openState(ctx context.Context, c *serveConfig, log *slog.Logger) (_ *stateParts, err error) {
	sp := &stateParts{}
	defer func() {
		if err != nil {
			sp.Close()
		}
	}()
	retention, err := parseRetention(c.LogRetention)
	if err != nil {
		return nil, err
	}
	hubCfg := logs.HubConfig{Logger: log.With("component", "hub"), ChainedDigest: true,
		MaxViewerRate: c.MaxViewerRate, Retention: retention}
	if c.Redis != "" {
		retFor := func(env string) logs.Retention {
			if r, ok := retention[env]; ok {
				return r
			}
			return retention[""]
		}
		rp, err := wireRedis(ctx, c, retFor, log)
		if err != nil {
			return nil, err
		}
		sp.redis = rp
		sp.closers = append(sp.closers, rp.Close)
		sp.audit, sp.broadcast, sp.readyChecks = rp.audit, rp, rp.readyChecks()
		sp.verifyAudit = rp.audit.Verify
		sp.store = store.New(rp.backend)
		if sp.hub, err = logs.NewHub(rp.hubConfig(hubCfg)); err != nil {
			return nil, fmt.Errorf("log hub: %w", err)
		}
		sp.closers = append(sp.closers, sp.hub.Close)
		return sp, nil
	}
	dir := filepath.Join(c.Data, "audit")
	aud, err := audit.Open(ctx, audit.Config{Dir: dir, SigningKeyFile: c.AuditSigningKeyFile, CheckpointInterval: c.AuditCheckpointInterval, Retention: c.AuditOps.Retention,
		Logger: log.With("component", "audit")})
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	sp.closers = append(sp.closers, aud.Close)
	sp.audit = aud
	sp.verifyAudit = func(ctx context.Context) (audit.Report, error) { return audit.Verify(ctx, dir, nil) }
	backend, err := store.OpenSQLite(ctx, filepath.Join(c.Data, "state.db"))
	if err != nil {
		return nil, err
	}
	sp.store = store.New(backend)
	sp.closers = append(sp.closers, sp.store.Close)
	backlog, err := logs.OpenSQLiteBacklog(ctx, filepath.Join(c.Data, "logs.db"), log.With("component", "backlog"))
	if err != nil {
		return nil, fmt.Errorf("log backlog: %w", err)
	}
	sp.closers = append(sp.closers, backlog.Close)
	if err := backlog.UseKeys(ctx, c.backlogKeys); err != nil {
		return nil, backlogKeyError(err)
	}
	hubCfg.Backlog = backlog
	if sp.hub, err = logs.NewHub(hubCfg); err != nil {
		return nil, fmt.Errorf("log hub: %w", err)
	}
	sp.closers = append(sp.closers, sp.hub.Close)
	return sp, nil
}

// start runs the Redis background work (feed reader, control channel) until
// ctx ends; the returned function waits for it. A no-op on one machine.
func (sp *stateParts) start(ctx context.Context, srv *gateway.Server) (wait func()) {
	if sp.redis == nil {
		return func() {}
	}
	return sp.redis.start(ctx, srv, sp.hub)
}

// replicaID is the stable replica id recorded in stream.opened with
// --redis, so start-up recovery closes only this replica's views; empty
// on one machine, where every open view is this process's.
func (sp *stateParts) replicaID() string {
	if sp.redis == nil {
		return ""
	}
	return sp.redis.replicaID
}

// Close closes everything opened, newest first.
func (sp *stateParts) Close() error {
	var errs []error
	for i := len(sp.closers) - 1; i >= 0; i-- {
		errs = append(errs, sp.closers[i]())
	}
	sp.closers = nil
	return errors.Join(errs...)
}

// readyNotes are /readyz details that do not change readiness: an accepted
// weak Redis durability is shown there. (Wiring needs gateway.Config to
// carry them; see the report to the lead.)
func (sp *stateParts) readyNotes() map[string]string {
	if sp.redis == nil || sp.redis.weak == nil {
		return nil
	}
	return map[string]string{"redis_durability": "weak, accepted by --redis-accept-weak-durability: " + sp.redis.weak.Error()}
}

// consumeOnce marks login states used across replicas (Redis); nil on one
// machine, where the authenticator's in-memory set is enough.
func (sp *stateParts) consumeOnce() func(ctx context.Context, key string, until time.Time) (bool, error) {
	if sp.redis == nil {
		return nil
	}
	once, err := cluster.NewOnce(sp.redis.client, redisPrefix)
	if err != nil {
		return func(context.Context, string, time.Time) (bool, error) { return false, err }
	}
	return once.Consume
}

package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// AlertmanagerConfig wires an Alertmanager receiver.
type AlertmanagerConfig struct {
	// URLs are the Alertmanagers' base URLs (http://am:9093); each gets
	// every alert (Alertmanager deduplicates by label set).
	URLs []string
	// Store holds the outbox (the same file as the alerts) of a gateway on
	// its own; ignored with Redis.
	Store *Store
	// Redis, if set, holds the outbox the replicas share (under
	// RedisPrefix+"alerts:am:"): any replica may deliver a row, one at a
	// time, and a dead replica's rows are taken over once its claim lease
	// ends.
	Redis       *redis.Client
	RedisPrefix string
	// ClaimLease is how long a replica holds the rows it took before
	// another may take them over; zero means 30s. A post's timeout is at
	// most half of it.
	ClaimLease time.Duration
	// GeneratorURL is the link back to loggate for an alert; nil: none.
	GeneratorURL func(Alert) string
	// ResolveAfter is how far in the future a firing alert's endsAt is set,
	// so Alertmanager resolves it by itself if loggate stops re-sending;
	// zero means 4m (four times the default resend interval).
	ResolveAfter time.Duration
	// MaxPending bounds the outbox rows; further alerts are dropped and
	// counted. Zero means 10000.
	MaxPending int
	// Client sends the requests; nil means a client with a 10s timeout.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Alertmanager delivers alerts to Alertmanager's API v2 through a
// persisted outbox: one row per alert and target, holding the latest state
// (a newer state replaces an undelivered older one), retried with backoff
// until delivered, kept across restarts (in SQLite, or in Redis shared by
// the replicas).
type Alertmanager struct {
	cfg    AlertmanagerConfig
	outbox amOutbox
	wake   chan struct{}
	// timeout bounds one post.
	timeout time.Duration

	delivered, failed, dropped atomic.Int64
}

// NewAlertmanager validates cfg.
func NewAlertmanager(cfg AlertmanagerConfig) (*Alertmanager, error) {
	if cfg.Store == nil && cfg.Redis == nil {
		return nil, fmt.Errorf("alertmanager: Store or Redis is required")
	}
	for i, u := range cfg.URLs {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, fmt.Errorf("alertmanager URL %q: must be an http(s) URL", u)
		}
		cfg.URLs[i] = u
	}
	if cfg.ResolveAfter <= 0 {
		cfg.ResolveAfter = 4 * time.Minute
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10000
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ClaimLease <= 0 {
		cfg.ClaimLease = 30 * time.Second
	}
	m := &Alertmanager{cfg: cfg, wake: make(chan struct{}, 1), timeout: min(10*time.Second, cfg.ClaimLease/2)}
	if cfg.Redis != nil {
		prefix := cfg.RedisPrefix
		if prefix == "" {
			prefix = "loggate:"
		}
		m.outbox = newRedisOutbox(cfg.Redis, prefix, cfg.ClaimLease)
	} else {
		m.outbox = sqliteOutbox{cfg.Store}
	}
	return m, nil
}

// Delivered, Failed and Dropped count outbox rows delivered, failed
// attempts, and alerts dropped (outbox full, or refused by a receiver).
func (m *Alertmanager) Delivered() int64 { return m.delivered.Load() }
func (m *Alertmanager) Failed() int64    { return m.failed.Load() }
func (m *Alertmanager) Dropped() int64   { return m.dropped.Load() }

// Pending counts the outbox rows waiting.
func (m *Alertmanager) Pending(ctx context.Context) (int, error) { return m.outbox.pending(ctx) }

// amAlert is Alertmanager's API v2 postable alert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Labels returns the label set an alert has in Alertmanager: alertname,
// service, env, severity, the rule's labels and the group values.
func Labels(a Alert) map[string]string {
	l := map[string]string{"alertname": a.Rule, "severity": a.Severity}
	if a.Service != "" {
		l["service"] = a.Service
	}
	if a.Env != "" {
		l["env"] = a.Env
	}
	for k, v := range a.Labels {
		l[k] = v
	}
	for k, v := range a.Group {
		if n := labelName(k); l[n] == "" {
			l[n] = v
		}
	}
	return l
}

func (m *Alertmanager) body(a Alert) ([]byte, error) {
	am := amAlert{Labels: Labels(a), Annotations: cloneMap(a.Annotations)}
	if am.Annotations == nil {
		am.Annotations = map[string]string{}
	}
	am.Annotations["count"], am.Annotations["window"] = itoa(a.Count), a.Window
	am.Annotations["loggate_alert_id"] = a.ID
	if a.Sample != "" { // only there when policy allowed it (see Alert.Sample)
		am.Annotations["sample"] = a.Sample
	}
	if a.StartedAt != nil {
		am.StartsAt = *a.StartedAt
	}
	if a.EndedAt != nil {
		am.EndsAt = *a.EndedAt
	} else {
		am.EndsAt = m.cfg.Now().Add(m.cfg.ResolveAfter).UTC()
	}
	if m.cfg.GeneratorURL != nil {
		am.GeneratorURL = m.cfg.GeneratorURL(a)
	}
	return json.Marshal(am)
}

func target(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:8])
}

// Enqueue queues the alert's state for every URL. Pending alerts are not
// sent (Alertmanager knows firing and resolved only). It never waits for
// a receiver.
func (m *Alertmanager) Enqueue(ctx context.Context, a Alert) error {
	if a.State == StatePending || len(m.cfg.URLs) == 0 {
		return nil
	}
	b, err := m.body(a)
	if err != nil {
		return err
	}
	now := m.cfg.Now()
	for _, u := range m.cfg.URLs {
		ok, err := m.outbox.put(ctx, a.ID, target(u), b, now, m.cfg.MaxPending)
		if err != nil {
			return fmt.Errorf("alert outbox: %w", err)
		}
		if !ok {
			m.dropped.Add(1)
		}
	}
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run delivers the outbox until ctx ends.
func (m *Alertmanager) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		m.deliverDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.wake:
		}
	}
}

// deliverDue posts every due row, one batch per target.
func (m *Alertmanager) deliverDue(ctx context.Context) {
	now := m.cfg.Now()
	for _, u := range m.cfg.URLs {
		t := target(u)
		rows, err := m.outbox.due(ctx, t, now, 100)
		if err != nil {
			m.cfg.Logger.Warn("read alert outbox", "err", err)
			return
		}
		if len(rows) == 0 {
			continue
		}
		bodies := make([]json.RawMessage, len(rows))
		for i, r := range rows {
			bodies[i] = r.body
		}
		status, err := m.post(ctx, u, bodies)
		if ctx.Err() != nil {
			return // stopping: the rows stay (claimed ones until their lease ends)
		}
		switch {
		case err == nil && status/100 == 2:
			// Counted before the rows leave the outbox, so that whoever sees
			// the outbox empty also sees them counted.
			m.delivered.Add(int64(len(rows)))
			m.finish(ctx, t, rows, now)
		case err == nil && status/100 == 4 && status != http.StatusTooManyRequests:
			// The receiver refuses these alerts: retrying cannot help.
			m.cfg.Logger.Warn("alertmanager refused alerts", "target", t, "status", status, "alerts", len(rows))
			m.finish(ctx, t, rows, now)
			m.dropped.Add(int64(len(rows)))
		default:
			m.failed.Add(1)
			m.cfg.Logger.Warn("alertmanager delivery failed; will retry", "target", t, "status", status, "err", err)
			for _, r := range rows {
				if err := m.outbox.retry(ctx, t, r, now.Add(backoff(r.attempt+1)), now); err != nil {
					m.cfg.Logger.Warn("alert outbox", "err", err)
				}
			}
		}
	}
}

func (m *Alertmanager) finish(ctx context.Context, t string, rows []outRow, now time.Time) {
	for _, r := range rows {
		if err := m.outbox.done(ctx, t, r, now); err != nil {
			m.cfg.Logger.Warn("alert outbox", "err", err)
		}
	}
}

// backoff is 1s doubling to at most 1m, with up to 25% jitter.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt-1, 6)
	d = min(d, time.Minute)
	return d + time.Duration(rand.Int64N(int64(d/4)+1))
}

func (m *Alertmanager) post(ctx context.Context, base string, bodies []json.RawMessage) (int, error) {
	b, err := json.Marshal(bodies)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v2/alerts", bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.cfg.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

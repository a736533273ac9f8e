package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loggate/loggate/cmd/loggate/internal/exitcode"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/audit/sink"
	"github.com/loggate/loggate/gateway/cluster"
)

// auditOps are the audit trail's retention, legal hold and sink settings of
// `loggate serve`. Like every serve setting each is a flag, else
// LOGGATE_<FLAG>, else a key of --config.
type auditOps struct {
	Retention             time.Duration
	LegalHold             string
	SinkWebhook           string
	SinkWebhookSecretFile string
	SinkSyslog            string
	SinkSyslogCAFile      string
	SinkFile              string
	SinkFileMaxBytes      int64
	SinkFileMaxFiles      int
	CheckpointFile        string
	SinkCheckpointEvery   time.Duration
}

func (a *auditOps) flags(fs *flag.FlagSet) {
	fs.DurationVar(&a.Retention, "audit-retention", 0, "purge audit records older than this, keeping their hashes (e.g. 9600h; 0 keeps everything)")
	fs.StringVar(&a.LegalHold, "audit-legal-hold", "", "set the audit legal hold at start-up: on or off (audited; empty leaves it as recorded)")
	fs.StringVar(&a.SinkWebhook, "audit-sink-webhook", "", "URL receiving every audit event as a signed POST (Standard Webhooks headers)")
	fs.StringVar(&a.SinkWebhookSecretFile, "audit-sink-webhook-secret-file", "", "file holding the audit webhook HMAC secret (or LOGGATE_AUDIT_SINK_WEBHOOK_SECRET)")
	fs.StringVar(&a.SinkSyslog, "audit-sink-syslog", "", "syslog receiver for audit events, RFC 5424 octet-counted: tcp://host:port or tls://host:port")
	fs.StringVar(&a.SinkSyslogCAFile, "audit-sink-syslog-ca-file", "", "PEM CA certificates trusted for tls:// syslog (default: system roots)")
	fs.StringVar(&a.SinkFile, "audit-sink-file", "", "NDJSON file receiving every audit event, rotated by size")
	fs.Int64Var(&a.SinkFileMaxBytes, "audit-sink-file-max-bytes", 64<<20, "rotate the audit sink file at this size")
	fs.StringVar(&a.CheckpointFile, "audit-checkpoint-file", "", "append every signed audit checkpoint to this file (JSON lines; keep it on another mount)")
	fs.IntVar(&a.SinkFileMaxFiles, "audit-sink-file-max-files", 0, "rotated audit sink files to keep (0 keeps all)")
	fs.DurationVar(&a.SinkCheckpointEvery, "audit-sink-checkpoint-interval", 10*time.Second, "also push the newest signed checkpoint to the audit sinks (type audit.checkpoint, after the events it covers) at most this often; 0 never")
}

// checkpointSource is what the sinks push checkpoints from: the trail's
// newest one, or nil when --audit-sink-checkpoint-interval is 0.
func (a auditOps) checkpointSource(latest func(context.Context) (audit.Checkpoint, error)) func(context.Context) (audit.Checkpoint, error) {
	if a.SinkCheckpointEvery <= 0 {
		return nil
	}
	return latest
}

// startAudit applies the legal hold setting and starts one sink runner per
// configured sink. The returned stop function ends the runners and waits
// for them; call it before closing the store.
func startAudit(ctx context.Context, a auditOps, aud *audit.Store, dir string, getenv func(string) string,
	reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if err := applyLegalHold(ctx, a.LegalHold, aud); err != nil {
		return nil, err
	}
	sinks, err := buildSinks(a, getenv)
	if err != nil {
		return nil, err
	}
	m := newSinkMetrics(aud)
	if reg != nil {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("audit sink metrics: %w", err)
		}
	}
	cdir := filepath.Join(dir, "sinks")
	if len(sinks) > 0 {
		if err := os.MkdirAll(cdir, 0o700); err != nil {
			return nil, fmt.Errorf("audit sinks: %w", err)
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for i, ns := range sinks {
		r, err := sink.NewRunner(sink.Config{
			Name: ns.name, Source: aud, Sink: ns.sink, CursorFile: filepath.Join(cdir, ns.name+".cursor"),
			Checkpoint: a.checkpointSource(aud.LatestCheckpoint), CheckpointEvery: a.SinkCheckpointEvery,
			Observe: m.observe, Logger: log.With("component", "audit-sink"),
		})
		if err != nil {
			cancel()
			wg.Wait() // started runners close their own sinks
			for _, o := range sinks[i:] {
				o.sink.Close()
			}
			return nil, err
		}
		wg.Go(func() { r.Run(runCtx) })
		log.Info("audit sink started", "sink", ns.name, "cursor", r.Cursor())
	}
	return func() { cancel(); wg.Wait() }, nil
}

// startSharedAudit runs the configured sinks with --redis: on one replica
// at a time, the holder of a lease in Redis, from cursors kept in Redis, so
// a replica taking over resumes where the last holder stopped (at least
// once: receivers deduplicate on the event id). The returned stop function
// ends the sinks and releases the lease; call it before closing the client.
func startSharedAudit(ctx context.Context, a auditOps, rp *redisParts, getenv func(string) string,
	reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	if a.LegalHold != "" || a.Retention != 0 {
		log.Warn("--audit-legal-hold and --audit-retention apply to the local audit store only; ignored with --redis")
	}
	sinks, err := buildSinks(a, getenv)
	if err != nil || len(sinks) == 0 {
		return func() {}, err
	}
	m := newSinkMetrics(nil)
	if reg != nil {
		if err := reg.Register(m); err != nil {
			for _, s := range sinks {
				s.sink.Close()
			}
			return nil, fmt.Errorf("audit sink metrics: %w", err)
		}
	}
	lease, err := cluster.NewLease(cluster.LeaseConfig{Client: rp.client, Prefix: redisPrefix, Name: "audit-sinks",
		Holder: rp.control.ReplicaID(), Logger: log.With("component", "audit-sink")})
	if err != nil {
		for _, s := range sinks {
			s.sink.Close()
		}
		return nil, err
	}
	cfgs := make([]sink.Config, 0, len(sinks))
	for _, ns := range sinks {
		cfgs = append(cfgs, sink.Config{Name: ns.name, Source: rp.audit, Sink: ns.sink, Observe: m.observe,
			Checkpoint: a.checkpointSource(rp.audit.LatestCheckpoint), CheckpointEvery: a.SinkCheckpointEvery,
			Logger: log.With("component", "audit-sink")})
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		cursor := func(name, term string) sink.CursorStore { return cluster.NewLeaseCursor(lease, name, term) }
		sink.RunLeased(runCtx, lease, cursor, cfgs, log.With("component", "audit-sink"))
	}()
	log.Info("audit sinks run on the replica holding the lease", "lease", lease.Key(), "sinks", len(cfgs))
	return func() { cancel(); <-done }, nil
}

type namedSink struct {
	name string
	sink sink.Sink
}

func buildSinks(a auditOps, getenv func(string) string) ([]namedSink, error) {
	var out []namedSink
	if a.SinkWebhook != "" {
		raw, err := secret(a.SinkWebhookSecretFile, getenv("LOGGATE_AUDIT_SINK_WEBHOOK_SECRET"))
		if err != nil {
			return nil, fmt.Errorf("audit webhook secret: %w", err)
		}
		key, err := sink.ParseWebhookSecret([]byte(raw))
		if err != nil {
			return nil, fmt.Errorf("audit webhook secret: %w", err)
		}
		wh, err := sink.NewWebhook(sink.WebhookConfig{URL: a.SinkWebhook, Secret: key})
		if err != nil {
			return nil, err
		}
		out = append(out, namedSink{"webhook", wh})
	}
	if a.SinkSyslog != "" {
		u, err := url.Parse(a.SinkSyslog)
		if err != nil || (u.Scheme != "tcp" && u.Scheme != "tls") || u.Port() == "" {
			return nil, fmt.Errorf("--audit-sink-syslog %q: want tcp://host:port or tls://host:port", a.SinkSyslog)
		}
		cfg := sink.SyslogConfig{Network: u.Scheme, Addr: u.Host}
		cfg.Hostname, _ = os.Hostname()
		if a.SinkSyslogCAFile != "" {
			pem, err := os.ReadFile(a.SinkSyslogCAFile)
			if err != nil {
				return nil, fmt.Errorf("audit syslog CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, errors.New("audit syslog CA: no PEM certificates in " + a.SinkSyslogCAFile)
			}
			cfg.TLS = &tls.Config{RootCAs: pool, ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
		}
		sl, err := sink.NewSyslog(cfg)
		if err != nil {
			return nil, err
		}
		out = append(out, namedSink{"syslog", sl})
	}
	if a.SinkFile != "" {
		f, err := sink.NewFile(sink.FileConfig{Path: a.SinkFile, MaxBytes: a.SinkFileMaxBytes, MaxFiles: a.SinkFileMaxFiles})
		if err != nil {
			return nil, err
		}
		out = append(out, namedSink{"file", f})
	}
	return out, nil
}

// applyLegalHold records the --audit-legal-hold setting when it differs
// from the state in the trail.
func applyLegalHold(ctx context.Context, want string, aud *audit.Store) error {
	if want == "" {
		return nil
	}
	if want != "on" && want != "off" {
		return exitcode.Usagef("--audit-legal-hold must be on or off, got %q", want)
	}
	cur, err := aud.LegalHold(ctx)
	if err != nil {
		return err
	}
	if cur.On == (want == "on") {
		return nil
	}
	_, err = aud.SetLegalHold(ctx, want == "on", "set with --audit-legal-hold at start-up",
		audit.Actor{Kind: audit.ActorSystem, ID: "config"})
	return err
}

// sinkMetrics exports delivery counters, cursors and lag per sink, and the
// store's retention counter.
type sinkMetrics struct {
	aud        *audit.Store // nil with --redis: no retention counter
	deliveries *prometheus.CounterVec
	// checkpoints and checkpointSize count the signed checkpoints pushed.
	checkpoints    *prometheus.CounterVec
	checkpointSize *prometheus.GaugeVec
	cursor         *prometheus.GaugeVec
	lag            *prometheus.GaugeVec
	purged         *prometheus.Desc
}

func newSinkMetrics(aud *audit.Store) *sinkMetrics {
	return &sinkMetrics{
		aud: aud,
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_audit_sink_deliveries_total",
			Help: "Audit sink delivery attempts by result (ok, error)."}, []string{"sink", "result"}),
		cursor: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loggate_audit_sink_cursor_seq",
			Help: "Seq of the last audit event the sink delivered."}, []string{"sink"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loggate_audit_sink_lag_seconds",
			Help: "Age of the newest audit event in the sink's last delivery attempt."}, []string{"sink"}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_audit_sink_checkpoints_total",
			Help: "Signed checkpoints pushed to the audit sink, by result (ok, error)."}, []string{"sink", "result"}),
		checkpointSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "loggate_audit_sink_checkpoint_size",
			Help: "Size (events) of the last signed checkpoint the sink took."}, []string{"sink"}),
		purged: prometheus.NewDesc("loggate_audit_purged_records_total",
			"Audit records emptied by retention since start.", nil, nil),
	}
}

func (m *sinkMetrics) observe(d sink.Delivery) {
	result := "ok"
	if d.Err != nil {
		result = "error"
	}
	if d.Checkpoint > 0 {
		m.checkpoints.WithLabelValues(d.Sink, result).Inc()
		if d.Err == nil {
			m.checkpointSize.WithLabelValues(d.Sink).Set(float64(d.Checkpoint))
		}
		return
	}
	m.deliveries.WithLabelValues(d.Sink, result).Inc()
	m.cursor.WithLabelValues(d.Sink).Set(float64(d.Cursor))
	m.lag.WithLabelValues(d.Sink).Set(d.Lag.Seconds())
}

func (m *sinkMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.deliveries.Describe(ch)
	m.checkpoints.Describe(ch)
	m.checkpointSize.Describe(ch)
	m.cursor.Describe(ch)
	m.lag.Describe(ch)
	if m.aud != nil {
		ch <- m.purged
	}
}

func (m *sinkMetrics) Collect(ch chan<- prometheus.Metric) {
	m.deliveries.Collect(ch)
	m.checkpoints.Collect(ch)
	m.checkpointSize.Collect(ch)
	m.cursor.Collect(ch)
	m.lag.Collect(ch)
	if m.aud == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.purged, prometheus.CounterValue, float64(m.aud.Stats().Purged))
}

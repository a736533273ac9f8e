package gateway

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	auditEvents    *prometheus.CounterVec
	auditFailures  prometheus.Counter
	decisions      *prometheus.CounterVec
	policyErrors   prometheus.Counter
	ingestEntries  prometheus.Counter
	ingestRejected *prometheus.CounterVec
	tails          prometheus.Gauge
	notifications  *prometheus.CounterVec
	viewCountSaves prometheus.Counter

	controlConns       prometheus.Gauge
	levelChanges       *prometheus.CounterVec
	levelAuditFailures prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_http_requests_total",
			Help: "HTTP requests by method, route pattern and status."}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "loggate_http_request_duration_seconds",
			Help: "HTTP request latency by route pattern.", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"route"}),
		auditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_audit_events_total",
			Help: "Audit events committed, by action."}, []string{"action"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "loggate_audit_write_failures_total",
			Help: "Audit writes that failed; each failed closed (the action was refused)."}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_requests_total",
			Help: "Access requests by resulting state."}, []string{"state"}),
		policyErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "loggate_policy_errors_total",
			Help: "Policy evaluations that failed (and denied)."}),
		ingestEntries: prometheus.NewCounter(prometheus.CounterOpts{Name: "loggate_ingest_entries_total",
			Help: "Log entries accepted."}),
		ingestRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_ingest_rejected_total",
			Help: "Ingest requests refused, by reason."}, []string{"reason"}),
		tails: prometheus.NewGauge(prometheus.GaugeOpts{Name: "loggate_tails_open",
			Help: "Live tail WebSockets open on this replica."}),
		viewCountSaves: prometheus.NewCounter(prometheus.CounterOpts{Name: "loggate_view_counts_saves_total",
			Help: "Saves of live views' counts to the data directory (for crash recovery)."}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_notification_attempts_total",
			Help: "Notification delivery attempts by outcome."}, []string{"outcome"}),
		controlConns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "loggate_control_connections_open",
			Help: "Services holding a level control WebSocket to this replica."}),
		levelChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_level_changes_total",
			Help: "Raised log levels turned on or off for a stream and scope."}, []string{"change"}),
		levelAuditFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "loggate_level_audit_failures_total",
			Help: "stream.debug_enabled/disabled events that could not be recorded."}),
	}
	reg.MustRegister(m.controlConns, m.levelChanges, m.levelAuditFailures)
	reg.MustRegister(m.httpRequests, m.httpDuration, m.auditEvents, m.auditFailures, m.decisions, m.policyErrors,
		m.ingestEntries, m.ingestRejected, m.tails, m.notifications, m.viewCountSaves)
	_ = reg.Register(collectors.NewGoCollector())
	_ = reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeHTTP(method, route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	if code == 0 {
		code = 200
	}
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// registerSpool exports the audit spool's depth and counters.
func (m *metrics) registerSpool(reg *prometheus.Registry, sp Spooler) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "loggate_audit_spool_depth",
		Help: "Audit events waiting in this replica's spool for the trail."},
		func() float64 { return float64(sp.Stats().Depth) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_audit_spooled_total",
			Help: "Audit events put in the spool because the trail was unavailable."},
			func() float64 { return float64(sp.Stats().Spooled) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_audit_spool_drained_total",
			Help: "Spooled audit events appended to the trail."},
			func() float64 { return float64(sp.Stats().Drained) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "loggate_audit_spool_corrupt_total",
			Help: "Spool records found torn or corrupt at start-up (quarantined, never appended)."},
			func() float64 { return float64(sp.Stats().Corrupt) }))
}

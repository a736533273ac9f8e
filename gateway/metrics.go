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
	alerts         *prometheus.CounterVec
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
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_notification_attempts_total",
			Help: "Notification delivery attempts by outcome."}, []string{"outcome"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "loggate_alerts_total",
			Help: "Alert state changes by new state (firing, resolved)."}, []string{"state"}),
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.auditEvents, m.auditFailures, m.decisions, m.policyErrors,
		m.ingestEntries, m.ingestRejected, m.tails, m.notifications, m.alerts)
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

// Package alert watches log lines and audit events for patterns and turns
// them into alerts: pending, firing, resolved.
//
// It owns the rules file format (Parse), the evaluator (Engine: one pass
// over a line for every rule, sliding-window counts per group, pending time,
// absence), the alert records (Store, in SQLite) and the delivery of alerts
// to Prometheus Alertmanager through a persisted, bounded outbox.
//
// Observing a line only counts in memory; state changes, storage and
// delivery happen on the engine's own goroutine, so a slow disk or a dead
// receiver never slows ingest. An alert carries counts, names and labels,
// never a raw line. It must not decide access, import the gateway, or log a
// line's content.
package alert

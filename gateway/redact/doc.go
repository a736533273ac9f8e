// Package redact masks secrets and personal data in log entries before they
// are published to viewers.
//
// It owns the rule set (DefaultRules), the rule engine (a keyword prefilter
// in front of RE2 patterns and hand-written scanners) and the masks. It runs
// once per entry at ingest, on the hot path: a line without any rule keyword
// runs no regular expression and allocates nothing.
//
// It must not log, store or count the masked values themselves; only rule
// names and hit counts leave the package. Oversized text is truncated and
// then scanned, never passed through unscanned (fail closed).
package redact

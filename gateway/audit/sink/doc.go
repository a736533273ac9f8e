// Package sink copies the audit trail to outside receivers: an HMAC-signed
// webhook (Standard Webhooks headers), RFC 5424 syslog over TCP or TLS with
// octet-counted framing (RFC 5425/6587), and rotating NDJSON files.
//
// Delivery is at-least-once. A Runner reads stored records after its cursor
// (audit.Store.After), hands them to its Sink, and only then saves the cursor
// (a small file, replaced atomically). A crash between delivery and saving
// re-sends that batch on restart, so receivers deduplicate on the event id,
// which every format carries. Failed deliveries are retried with
// exponential backoff, forever: a sink that is down lags, it never skips.
//
// Every format ships the exact stored record followed by its hash (see
// audit.Record.Line), so a receiver can recompute the hash chain instead of
// trusting the transport.
//
// The package must not write to the audit store, must not log event
// contents, and must not log the webhook secret.
package sink

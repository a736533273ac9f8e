// Package cluster lets several loggate replicas share one Redis: it carries
// control messages (revocations, expiries, extensions) between replicas on
// a control stream a reconnecting replica resumes (Control), the live log feed with shared per-stream seqs
// (Feed: one Redis Stream per log stream, read by every replica and fanned
// out locally), one gapless hash-chained audit trail (Audit), and
// single-use marks (Once), and a lease electing one replica at a time for
// work that must not run twice, such as the audit sinks, with cursors
// fenced by the lease (Lease, LeaseCursor; see sink.RunLeased).
//
// A replica's knowledge of the control stream is bounded: Control.Confirmed
// says up to when it has provably seen every control message (a read that
// answered, not a live connection), and the feed syncs with the control
// subscription before delivering entries, so entries never overtake an
// earlier revocation. Clients from DialWithin give every call a deadline
// and fail fast while Redis is unreachable.
//
// It imports only gateway/logs and gateway/audit, for their types; it knows
// nothing of HTTP, grants or users. The gateway adapts Message to its own
// control events.
//
// Requirements on Redis: version 6.2 or later, a single primary (not Redis
// Cluster: the feed's script touches keys of several streams), and for the
// audit trail persistence of every write (appendonly yes, appendfsync
// always), which CheckDurability verifies.
//
// Every goroutine belongs to a Run method and ends with its context.
package cluster

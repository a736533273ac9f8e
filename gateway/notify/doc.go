// Package notify delivers the gateway's notifications (a request was
// created, approved, denied or cancelled; someone broke glass; a grant is
// about to expire or was revoked) to webhooks.
//
// It owns a persisted outbox (its own SQLite file), the delivery goroutine
// with retries, exponential backoff with jitter and Retry-After, routing by
// event kind to each configured target, Standard Webhooks signatures for
// JSON bodies and a Slack-compatible text body. Notify only writes to the
// outbox; delivery happens later, so a restart or an unreachable receiver
// loses nothing: undelivered messages are retried on the next start.
//
// With Config.Redis the outbox is instead a Redis Stream shared by every
// replica and read through a consumer group: each message is attempted by
// one live replica at a time, and what a dead replica held is claimed by
// another after Config.RedisClaimIdle (at least once across a crash; the
// webhook-id stays the same, so receivers deduplicate). This package may
// import go-redis, never the project's cluster code.
//
// It must not decide anything about access, import the gateway, or write a
// secret (signing keys, target URLs, which for Slack carry a token) to a log
// line or to the outbox file: the outbox names a target by a hash.
package notify

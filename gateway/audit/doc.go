// Package audit owns loggate's audit trail: the event schema, a durable,
// append-only, hash-chained store in its own SQLite file, an RFC 6962 Merkle
// tree over the events with signed Ed25519 checkpoints, offline verification,
// search, inclusion proofs and export.
//
// Integrity model. Every event is stored as the exact canonical JSON bytes
// that were hashed (the "record"); the record never contains its own hash.
//
//   - Chain: hash = SHA-256(prev_hash || record), where prev_hash is the raw
//     32-byte hash of the previous event (32 zero bytes for seq 1). seq is
//     gapless and starts at 1.
//   - Tree: leaf seq-1 of an RFC 6962 tree is tlog.RecordHash(record). The
//     stored tree hashes (tlog.StoredHashes) are kept in their own table so
//     proofs and roots are cheap.
//   - Checkpoints: a C2SP-style signed note (origin, size, base64 root,
//     "time <RFC3339>") signed with Ed25519 through golang.org/x/mod/sumdb/note.
//     The head note is re-signed in the same transaction as every commit, and
//     a checkpoint is appended every CheckpointInterval (also when idle) and at
//     Close, so silence can be told from deletion.
//
// Files under Config.Dir: audit.db (+ -wal, -shm; mode 0600; schema in
// schema.go), keys/audit.key (PKCS#8 Ed25519, 0600, generated if absent and
// no SigningKeyFile is set) and keys/audit.pub (every note verifier key the
// store has used, one per line). Open refuses (ErrTampered) to extend a log
// whose tip the signed head does not cover, so a restart cannot launder
// tampering by re-signing it.
//
// Retention (Purge, Config.Retention) empties the records of a prefix of the
// log but keeps each row's hash and tree hashes and every checkpoint; it
// first appends retention.purged (seq_from, seq_to, ...), and Verify accepts
// an empty record only at or below the seq_to of the newest intact
// retention.purged event, so the chain, the tree and the signed roots still
// verify end to end. A legal hold (SetLegalHold, itself an event) blocks
// purging. RotateKey replaces the signing key, keeping every old verifier key
// in audit.pub, and records config.key_rotated.
//
// After (stored records past a seq) feeds the sinks in the sink subpackage;
// OpenViews finds stream.opened events without a stream.closed (same
// details.view_id) so start-up can close views a crash cut off.
//
// Verify recomputes everything from the stored record bytes, never from a
// re-encoding. Export writes each record followed by its hash, so a consumer
// can recompute the chain from an NDJSON line by stripping the final
// `,"hash":"…"` member.
//
// The package must not import any other loggate package, must not log event
// contents, and must not accept secrets in events: callers record digests and
// identifiers, never tokens or log lines. Appends fail closed: a write that is
// not durably committed returns an error wrapping ErrUnavailable.
package audit

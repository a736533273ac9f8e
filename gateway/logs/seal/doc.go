// Package seal encrypts log backlog entries at rest.
//
// A Ring holds the backlog keys of a key file, newest first: entries are
// sealed with the newest key and opened with whichever key sealed them, so
// keys rotate without downtime (add a key at the top, re-seal the backlog,
// then drop the old key). Each entry is sealed with AES-256-GCM; the entry's
// stream and sequence number are authenticated data, so an entry copied to
// another stream or position fails to open.
//
// Seal owns the key file format and the sealed entry format. It knows
// nothing of where entries are stored and never logs: callers report
// failures without the content.
package seal

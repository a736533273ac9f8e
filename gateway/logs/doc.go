// Package logs owns the log entry schema and the live fan-out of entries to
// viewers: sequence numbers per stream, the in-memory ring of recent entries
// (backfill and cursor resume), the optional on-disk backlog (restart), the
// per-viewer bounded queues with drop accounting, filters and sampling.
//
// It is transport-agnostic: it produces the complete JSON text of every
// WebSocket message (Message.Data) and the gateway writes those bytes. It
// must not know about HTTP, WebSockets, grants or users, and it imports
// nothing of the project.
//
// # Delivery guarantees
//
// Publish never blocks on a viewer. Each viewer has a bounded queue; when it
// is full, entries for that viewer are dropped and counted, and the viewer
// receives a "dropped" message (count and seq range, never log content) as
// soon as there is room. A viewer whose queue stays full for SlowTimeout is
// ended with ErrSlow. Backfill and live delivery are computed under the same
// stream lock, so a new viewer sees every entry exactly once.
//
// A backfill (Lines, Since, a resume) holds no copy of the ring: its bounds
// are fixed at Subscribe and its entries are read from the ring a page at a
// time just before the page is encoded and sent. Entries the ring drops
// (retention) before their page is read are announced by a "gap" with
// reason "retention" in their place, then the backfill goes on with what
// is left, in seq order.
//
// # Several replicas
//
// With HubConfig.Sequencer set, seqs come from a shared feed (Redis, in
// gateway/cluster): Publish stores entries there and every replica's feed
// reader delivers them, seqs set, with PublishAssigned, which skips
// duplicates and reports jumps as a "gap". EndViewers ends every viewer when
// the feed is lost, leaving the hub open.
//
// # Messages
//
// Message.Data is one of (golden copies in testdata/):
//
//	{"type":"entries","entries":[Entry, ...]}            at most 500 entries
//	{"type":"dropped","count":N,"from_seq":A,"to_seq":B,"reason":"slow_client"}
//	{"type":"gap","from_seq":A,"to_seq":B,"reason":"retention"|"cursor_ahead"}
//	{"type":"notice","message":"...","code":"sampling"|"sampling_end"}
//
// An "entries" message is encoded once per batch and filter key and its
// Data shared by every viewer with that key. "dropped" and "gap" carry seq
// numbers and counts only, never log content.
//
// # Lock order
//
// Locks are taken in this order and never the other way round:
//
//	Hub.mu  ->  stream.mu  ->  Viewer.mu
//	            stream.mu  ->  backlogWriter.mu
//
// Hub.mu only guards the stream map and is never held while taking a
// stream's lock. Hub.closed is an atomic so it can be read under stream.mu.
// No lock is held while a message is handed to a viewer's channel: that is
// done by the viewer's own pump goroutine.
package logs

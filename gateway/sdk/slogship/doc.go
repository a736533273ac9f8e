// Package slogship is the library a Go service embeds to send its logs to
// loggate and to log at a raised level only while an approved person is
// watching.
//
// A Shipper wraps the service's own slog.Handler (Shipper.Handler). Every
// record the service logs at its normal level goes to that handler as
// before and, batched and in the background, to loggate's NDJSON ingest
// endpoint. The Shipper also holds one control connection to loggate
// (GET /api/v1/control/levels, a WebSocket authenticated with the source
// token); while loggate says a view of a debug grant is open, records
// below the normal level that match the grant's scope are enabled too, and
// go to loggate only (Config.LocalDebug also writes them locally).
//
// It owns: the ship queue (bounded; a full queue drops records, counts
// them and ships a notice saying how many), the batch sender and the
// control loop, all ended by Close. It must not: block the caller's
// logging call, keep global state, import loggate's gateway packages (it
// speaks only the public HTTP API), or raise the level on its own: without
// a connection to loggate the service logs at its normal level.
package slogship

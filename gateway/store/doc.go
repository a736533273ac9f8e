// Package store persists the access workflow's records: requests, their
// approvals, grants, break-glass reviews and ingest sources.
//
// It owns the domain types and their durable storage (an embedded SQLite
// file by default; Redis for several replicas). It knows nothing of HTTP,
// policy or audit: the gateway decides, the store remembers. Every update is
// a read-modify-write inside one transaction, so two replicas or two
// approvers racing on the same request cannot both win.
package store

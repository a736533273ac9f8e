// Package gateway is loggate's hub: the one HTTP route table, the API and
// WebSocket handlers, and the access workflow that carries a request through
// policy, approvals, grant, expiry and revocation.
//
// It wires the leaf packages together (auth says who you are, policy says
// what you may do, audit remembers, logs carries the lines, store keeps the
// workflow's records) and maps their error kinds to HTTP statuses. Leaves
// never import this package. Every state change is audited before it takes
// effect; if the audit write fails, the change does not happen (503).
package gateway

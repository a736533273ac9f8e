// Package cli is the engineer's client: login, request, wait, tail, approve,
// audit search, ship and the rest, run through Run with an Env that holds
// everything a command touches of the outside world. It speaks to the gateway
// only over its public HTTP and WebSocket API and must import no server
// package (enforced in cmd/loggate/deps_test.go).
package cli

// Package api is the gateway's wire contract: the JSON its HTTP API sends and
// takes, the error shape, the tail's WebSocket frames and close codes, and the
// audit events as clients see them. The server's handlers and the clients
// (the CLI, the Go client) both use these types, so the contract is written
// once. It imports nothing of the project: a client can depend on it without
// pulling in the server.
//
// Add fields freely; never rename or remove one.
package api

// Package client is a Go client for the gateway's HTTP API, typed with
// package api: what the CLI and programs that ask for access on their own
// use. It holds no state beyond its Config and imports no server package.
// The tail (a WebSocket) is not here: its frames and close codes are in
// package api.
package client

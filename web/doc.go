// Package web is loggate's browser UI: embedded templates and static assets,
// served with strict security headers. Pages are shells rendered on the
// server; small same-origin scripts call the gateway's JSON API and open the
// tail WebSocket. It knows nothing of the gateway's internals.
package web

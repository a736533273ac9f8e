// Package web is loggate's browser UI: embedded HTML templates and static
// assets (one stylesheet, small ES modules), served from the binary with no
// build step.
//
// Pages are shells rendered on the server from html/template; the scripts
// under /static call the gateway's JSON API with same-origin fetch (sending
// the CSRF token on every state-changing call) and open the tail WebSocket
// on the page's own origin. Everything from the API, log lines above all, is
// rendered as text through DOM APIs, never as HTML, so the pages work under
// the gateway's strict Content-Security-Policy (no inline script or style).
// Pages set their referrer policy to same-origin with a meta element: under
// the gateway's "no-referrer" header a browser posts forms (sign-out) with
// "Origin: null", which the CSRF check rightly refuses.
//
// It owns page routing for every path the API does not claim; it must not
// import the gateway or any other loggate package, and it holds no secrets:
// identity and authorization are the API's business.
package web

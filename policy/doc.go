// Package policy decides access to log streams and authorizes actions on
// requests, grants, the audit trail and configuration, by evaluating Rego
// policies with an embedded OPA v1 engine.
//
// It owns loading policy files from an fs.FS (or a directory, with hot
// reload), compiling them once into prepared queries, converting the typed
// Input and ActionInput into Rego input documents, and converting the
// results back into typed decisions. Every failure - compile, evaluation
// error, timeout, undefined or malformed result - yields a deny.
//
// It must not grant, store or audit anything itself: the gateway records
// each Decision (with its ID and Revision) and each ReloadEvent. It
// imports nothing of the loggate project; the default policies live in
// package policies and are passed in by the command's wiring.
//
// The Rego queries are fixed (data.loggate.access.decision and
// data.loggate.authz.decision); request data only ever enters through the
// input document, and network builtins (http.send, net.lookup_ip_addr)
// and opa.runtime are removed from the compiler's capabilities.
package policy

// Package witness keeps an outside copy of an audit trail's newest signed
// checkpoint and checks, run after run, that the trail only ever grew: each
// run fetches the newest checkpoint and a consistency proof from the kept
// one (golang.org/x/mod/sumdb/tlog) and fails when the trail was rolled
// back, truncated, forked (history rewritten, even if re-signed with the
// stored key) or signed with a key outside the published key history.
//
// It is what `loggate audit verify` cannot be: verify reads the trail and
// its key from the same disk an attacker may hold, so a consistent rewrite
// verifies; the witness compares against what it saw earlier, kept
// elsewhere. It talks to the gateway only over its public HTTP API
// (HTTPSource) and imports nothing of the gateway but gateway/audit's
// checkpoint and proof types; the CLI command is a thin wrapper.
package witness

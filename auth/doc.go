// Package auth says who a caller is, never what the caller may do.
//
// It is loggate's OpenID Connect relying party: it verifies bearer tokens
// (ID tokens, or JWT access tokens issued for an accepted audience), runs the
// browser login (authorization code flow with PKCE S256, state and nonce),
// keeps the resulting session in an encrypted, authenticated cookie, refreshes
// it through the provider's token endpoint, and issues and checks CSRF tokens
// bound to that session.
//
// It owns: the Identity type, the session and login-flow cookie formats, the
// mapping of verification failures to coarse reason classes, and the
// aggregation of authentication events before they reach the audit hook.
//
// It must not: decide access (that is the policy package's job), import any
// other loggate package, log or emit a token, a refresh token, a session key
// or a client secret, or talk to the network in New (discovery is lazy because
// the development provider is started in the same process after New).
package auth

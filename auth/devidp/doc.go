// Package devidp is the development OpenID Connect identity provider that
// `loggate serve --dev` runs inside the gateway process.
//
// It is a real, if small, OIDC provider: discovery, JWKS with key rotation,
// the authorization-code flow with PKCE (S256), the resource-owner password
// grant, rotating refresh tokens, the device authorization grant (RFC 8628),
// userinfo and RP-initiated logout. Standard clients (go-oidc,
// golang.org/x/oauth2, browsers) use it unmodified.
//
// It owns its users, clients, signing keys and all grant state, kept in memory
// and bounded in size. It must not be used as a production identity provider
// (passwords are held in plain text in memory), must not import anything of
// the loggate project, and never logs passwords, codes or tokens.
package devidp

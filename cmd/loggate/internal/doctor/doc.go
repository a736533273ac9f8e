// Package doctor holds the checks that say whether a loggate deployment is
// safe to start: file permissions of the data directory and secrets, the
// identity provider's discovery document and keys, clock skew, Redis
// persistence, disk space, policies and the TLS certificate.
//
// Each check returns Results (ok, warn or fail, with a fix in words); it
// never changes what it checks. `loggate serve` runs the permission check
// at start; `loggate doctor` runs them all. The package reads no flags and
// no environment: the command passes what to check.
package doctor

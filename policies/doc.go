// Package policies holds loggate's default Rego policies (Rego v1) and
// their Rego unit tests, embedded as FS for the command's wiring to hand to
// policy.New.
//
// access.rego (package loggate.access) decides who may see which log
// stream, for how long and after whose approval; authz.rego (package
// loggate.authz) decides who may approve, deny, revoke, read the audit
// trail and manage sources and policies. README.md documents their input
// and output documents and how to change and test them.
//
// It holds no Go logic and imports nothing of the project.
package policies

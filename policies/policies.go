package policies

import "embed"

// FS holds the default policy files at its root: *.rego policies and
// their *_test.rego tests.
//
//go:embed *.rego
var FS embed.FS

package alert

import _ "embed"

// DefaultRules is the rules file loggate runs without --alert-rules: audit
// rules for break-glass use, repeated authentication failures per subject,
// bursts of denied requests, audit verification or witness failures and
// grants extended more than three times.
//
//go:embed defaults.yaml
var DefaultRules []byte

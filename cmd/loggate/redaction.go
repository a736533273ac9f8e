package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/loggate/loggate/gateway/redact"
)

// redactionFile is the JSON form of --redaction-file:
//
//	{"disable": ["email"],
//	 "extra": [{"name": "order-token", "pattern": "otk_[A-Za-z0-9]{24}", "keywords": ["otk_"]}],
//	 "max_scan_bytes": 65536,
//	 "profiles": {"prod": {"disable": [], "extra": [...]}}}
//
// A profile applies to one environment and starts from the defaults, not
// from the top-level settings, so each environment's rules read in one place.
type redactionFile struct {
	redactionProfile
	Profiles map[string]redactionProfile `json:"profiles"`
}

type redactionProfile struct {
	Disable      []string     `json:"disable"`
	Extra        []ruleConfig `json:"extra"`
	MaxScanBytes int          `json:"max_scan_bytes"`
}

type ruleConfig struct {
	Name     string   `json:"name"`
	Pattern  string   `json:"pattern"`
	Keywords []string `json:"keywords"`
	KeyOnly  bool     `json:"key_only"`
}

func (p redactionProfile) redactor() (*redact.Redactor, error) {
	cfg := redact.Config{Disable: p.Disable, MaxScanBytes: p.MaxScanBytes}
	for _, r := range p.Extra {
		if r.Name == "" || r.Pattern == "" {
			return nil, fmt.Errorf("each extra rule needs a name and a pattern")
		}
		cfg.Extra = append(cfg.Extra, redact.Rule{Name: r.Name, Pattern: r.Pattern, Keywords: r.Keywords, KeyOnly: r.KeyOnly})
	}
	return redact.New(cfg)
}

// loadRedaction builds the default redactor and the per-environment ones.
func loadRedaction(path string) (*redact.Redactor, map[string]*redact.Redactor, error) {
	var f redactionFile
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("redaction file: %w", err)
		}
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, nil, fmt.Errorf("redaction file %s: %w", path, err)
		}
	}
	def, err := f.redactionProfile.redactor()
	if err != nil {
		return nil, nil, fmt.Errorf("redaction rules: %w", err)
	}
	var byEnv map[string]*redact.Redactor
	for env, p := range f.Profiles {
		r, err := p.redactor()
		if err != nil {
			return nil, nil, fmt.Errorf("redaction profile %q: %w", env, err)
		}
		if byEnv == nil {
			byEnv = map[string]*redact.Redactor{}
		}
		byEnv[env] = r
	}
	return def, byEnv, nil
}

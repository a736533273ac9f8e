package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loggate/loggate/gateway/logs"
)

func TestRedactionFileProfiles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "redaction.json")
	os.WriteFile(path, []byte(`{
	  "extra": [{"name": "order-token", "pattern": "otk_[A-Za-z0-9]{24}", "keywords": ["otk_"]}],
	  "profiles": {"staging": {"disable": ["email"]}}
	}`), 0o600)
	def, byEnv, err := loadRedaction(path)
	if err != nil {
		t.Fatal(err)
	}
	msg := "token otk_abcdefghijklmnopqrstuvwx for alice@example.com"
	e := logs.Entry{Message: msg, Env: "prod"}
	def.Entry(&e)
	if strings.Contains(e.Message, "abcdefghijkl") || strings.Contains(e.Message, "alice@") {
		t.Errorf("default profile left a secret: %q", e.Message)
	}
	st := logs.Entry{Message: "mail alice@example.com", Env: "staging"}
	byEnv["staging"].Entry(&st)
	if st.Message != "mail alice@example.com" {
		t.Errorf("staging profile disables email masking; got %q", st.Message)
	}

	for name, body := range map[string]string{
		"unknown rule":   `{"disable": ["no-such-rule"]}`,
		"bad regexp":     `{"extra": [{"name": "x", "pattern": "("}]}`,
		"nameless rule":  `{"extra": [{"pattern": "x"}]}`,
		"malformed JSON": `{"disable": [`,
	} {
		os.WriteFile(path, []byte(body), 0o600)
		if _, _, err := loadRedaction(path); err == nil {
			t.Errorf("%s: loadRedaction accepted %s", name, body)
		}
	}
}

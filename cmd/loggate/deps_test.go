package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/loggate/loggate"

// TestImportRules enforces the layout: gateway is the hub, everything else
// is a leaf that imports nothing of the project, or only the types it must.
func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	rules := []struct {
		pkg     string
		allowed []string // project packages it may import (directly or not)
		why     string
	}{
		{"auth", nil, "auth says who you are, never what you may do; it must not know policy or the gateway"},
		{"auth/devidp", nil, "the development provider is a stand-alone OIDC provider"},
		{"policy", nil, "policy is OPA behind typed input/output; the policies come in as an fs.FS"},
		{"policies", nil, "policies are data (Rego files)"},
		{"web", nil, "the UI talks to the gateway only through its public API"},
		{"gateway/audit", nil, "the audit trail is a self-contained store that anything can verify"},
		{"gateway/logs/seal", nil, "sealing at rest is plain cryptography over bytes; it knows no entries"},
		{"gateway/logs", []string{"gateway/logs/seal"}, "the entry schema and fan-out are transport-agnostic"},
		{"gateway/store", nil, "the store remembers; it does not decide"},
		{"gateway/audit/sink", []string{"gateway/audit"}, "sinks ship audit records, nothing else"},
		{"gateway/cluster", []string{"gateway/logs", "gateway/logs/seal", "gateway/audit"}, "the Redis replica pieces carry entries, control messages and audit records, nothing else"},
		{"gateway/ingest", []string{"gateway/logs", "gateway/logs/seal"}, "decoders produce entries, nothing else"},
		{"gateway/redact", []string{"gateway/logs", "gateway/logs/seal"}, "redaction works on entries, nothing else"},
		{"gateway/sdk/slogship", nil, "services embed the library; it speaks loggate's public HTTP API and must not pull in the gateway"},
		{"cmd/loggate/internal/exitcode", nil, "the exit-status contract is shared by the server and client commands and knows neither"},
		{"gateway/api", nil, "the wire types are the contract between server and clients; a client must be able to import them without the server"},
		{"cmd/loggate/internal/cli", []string{"cmd/loggate/internal/exitcode", "gateway/api"},
			"the client speaks to the gateway only through its public API; it imports no server package"},
		{"gateway", []string{"auth", "policy", "gateway/api", "gateway/audit", "gateway/logs", "gateway/logs/seal", "gateway/store", "gateway/ingest", "gateway/redact"},
			"the hub wires leaves; it must not depend on the binary, the UI or the development provider"},
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+"/"+r.pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list %s: %v\n%s", r.pkg, err, out)
			}
			allowed := map[string]bool{module + "/" + r.pkg: true}
			for _, a := range r.allowed {
				allowed[module+"/"+a] = true
			}
			for _, dep := range strings.Fields(string(out)) {
				if strings.HasPrefix(dep, module+"/") && !allowed[dep] {
					t.Errorf("%s imports %s: not allowed, because %s", r.pkg, strings.TrimPrefix(dep, module+"/"), r.why)
				}
			}
		})
	}
}

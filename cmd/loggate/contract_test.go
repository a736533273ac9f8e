package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Contract tests: regressions found by checking the documented contract
// (README.md and the issue texts) from outside, against `serve --dev`.

// TestContractVerifyExportedCheckpointNote: the README says to export the
// checkpoint's `note` field and keep it; `jq -r .note > FILE` adds a second
// trailing newline, and `audit verify --checkpoint FILE` must still accept it.
func TestContractVerifyExportedCheckpointNote(t *testing.T) {
	g := startGateway(t)
	carol := g.token("carol")
	var cp struct {
		Note string `json:"note"`
	}
	if st := g.call("GET", "/api/v1/audit/checkpoint", carol, nil, &cp); st != 200 || cp.Note == "" {
		t.Fatalf("GET /api/v1/audit/checkpoint: status %d, note %q", st, cp.Note)
	}
	for _, tc := range []struct {
		name, text string
	}{
		{"as served", cp.Note},
		{"jq -r adds a newline", cp.Note + "\n"},
		{"CRLF", string(bytes.ReplaceAll([]byte(cp.Note), []byte("\n"), []byte("\r\n")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "cp.note")
			if err := os.WriteFile(file, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			var out, errOut bytes.Buffer
			err := runAuditVerify(context.Background(), []string{"--data", g.r.DataDir, "--checkpoint", file},
				func(string) string { return "" }, &out, &errOut)
			if err != nil {
				t.Errorf("audit verify --checkpoint: got %v, want success\n%s%s", err, out.String(), errOut.String())
			}
		})
	}
}

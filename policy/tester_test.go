package policy_test

import (
	"testing"

	"github.com/loggate/loggate/policy"
)

func TestRunTestsReportsEachTest(t *testing.T) {
	fsys := fixture(map[string]string{
		"access.rego": "package loggate.access\n\ndecision := {\"allow\": input.ok == true}\n",
		"access_test.rego": `package loggate.access_test

import data.loggate.access

test_allows_ok if access.decision.allow with input as {"ok": true}

test_wrongly_expects_allow if access.decision.allow with input as {"ok": false}

todo_test_skipped if false
`,
	})
	results, err := policy.RunTests(t.Context(), fsys)
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if len(results) != 2 {
		t.Fatalf("got %d results, want 2 (the skipped test is left out): %+v", len(results), results)
	}
	pass, fail := results[0], results[1]
	if pass.Name != "test_allows_ok" || !pass.Pass || pass.Fail != "" || pass.Package != "loggate.access_test" {
		t.Errorf("first result = %+v, want a pass of loggate.access_test.test_allows_ok", pass)
	}
	if fail.Name != "test_wrongly_expects_allow" || fail.Pass || fail.Fail != "false or undefined (access_test.rego:7)" {
		t.Errorf("second result = %+v, want a failure with a message", fail)
	}
}

func TestRunTestsRejectsBrokenPolicy(t *testing.T) {
	_, err := policy.RunTests(t.Context(), fixture(map[string]string{"a.rego": "package a\n\nx := \n"}))
	if err == nil {
		t.Error("RunTests on a syntax error returned nil error")
	}
}

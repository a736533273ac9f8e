package policies_test

import (
	"testing"

	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
)

// TestRegoTests runs the *_test.rego files against the default policies,
// one subtest per Rego test.
func TestRegoTests(t *testing.T) {
	results, err := policy.RunTests(t.Context(), policies.FS)
	if err != nil {
		t.Fatalf("RunTests: %v", err)
	}
	if len(results) == 0 {
		t.Fatal("RunTests found no Rego tests")
	}
	for _, r := range results {
		t.Run(r.Package+"."+r.Name, func(t *testing.T) {
			if !r.Pass {
				t.Errorf("%s", r.Fail)
			}
		})
	}
}

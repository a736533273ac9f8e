package policy

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RunTests runs the Rego tests (rules named test_* in *_test.rego files)
// found at the root of fsys against the policies beside them, with the
// same capabilities and strict builtin errors the engine uses. The results
// are sorted by package and name. An error means the files could not be
// read, parsed or compiled; failing tests are reported in the results.
func RunTests(ctx context.Context, fsys fs.FS) ([]TestResult, error) {
	files, err := readFiles(fsys)
	if err != nil {
		return nil, err
	}
	caps := capabilities()
	set, err := parseFiles(files, caps)
	if err != nil {
		return nil, err
	}
	return runTests(ctx, set, caps)
}

func runTests(ctx context.Context, set *policySet, caps *ast.Capabilities) ([]TestResult, error) {
	c := ast.NewCompiler().
		WithCapabilities(caps).
		WithDefaultRegoVersion(ast.RegoV1).
		WithEnablePrintStatements(false)
	ch, err := tester.NewRunner().
		SetCompiler(c).
		SetStore(inmem.New()).
		SetModules(set.modules).
		SetDefaultRegoVersion(ast.RegoV1).
		RaiseBuiltinErrors(true).
		CapturePrintOutput(false).
		SetParallel(1).
		RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		if r.Skip {
			continue
		}
		tr := TestResult{
			Name:     r.Name,
			Package:  strings.TrimPrefix(r.Package, "data."),
			Pass:     r.Pass(),
			Duration: r.Duration,
		}
		switch {
		case r.Error != nil:
			tr.Fail = "error: " + r.Error.Error()
		case r.Fail && r.Location != nil:
			tr.Fail = fmt.Sprintf("false or undefined (%s:%d)", r.Location.File, r.Location.Row)
		case r.Fail:
			tr.Fail = "false or undefined"
		}
		out = append(out, tr)
	}
	if err := ctx.Err(); err != nil {
		return out, fmt.Errorf("run policy tests: %w", err)
	}
	slices.SortFunc(out, func(a, b TestResult) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Name, b.Name))
	})
	return out, nil
}

// failedTests summarises the failing results, or returns "" if all passed.
func failedTests(results []TestResult) string {
	var names []string
	for _, r := range results {
		if !r.Pass {
			names = append(names, fmt.Sprintf("%s.%s (%s)", r.Package, r.Name, r.Fail))
		}
	}
	return strings.Join(names, "; ")
}

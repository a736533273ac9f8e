package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// The fixed queries. Never built from request data.
const (
	accessQuery = "data.loggate.access.decision"
	authzQuery  = "data.loggate.authz.decision"
)

// ErrNoPolicy is returned when a policy set has no policy files or lacks
// one of the decision rules the engine queries.
var ErrNoPolicy = errors.New("policy set incomplete")

// policyFile is one *.rego file read from the policy file system.
type policyFile struct {
	name    string
	content []byte
}

func (f policyFile) isTest() bool { return strings.HasSuffix(f.name, "_test.rego") }

// policySet is the files of one revision, parsed.
type policySet struct {
	revision string
	modules  map[string]*ast.Module // every file, tests included
	hasTests bool
}

// readFiles reads the *.rego files at the root of fsys, sorted by name.
func readFiles(fsys fs.FS) ([]policyFile, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read policy directory: %w", err)
	}
	var files []policyFile
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".rego" {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read policy file: %w", err)
		}
		files = append(files, policyFile{name: e.Name(), content: b})
	}
	slices.SortFunc(files, func(a, b policyFile) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// revisionOf hashes the files' names and contents (in name order), each
// length-prefixed so that no two different sets hash alike.
func revisionOf(files []policyFile) string {
	h := sha256.New()
	for _, f := range files {
		h.Write([]byte(strconv.Itoa(len(f.name))))
		h.Write([]byte{0})
		h.Write([]byte(f.name))
		h.Write([]byte(strconv.Itoa(len(f.content))))
		h.Write([]byte{0})
		h.Write(f.content)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// capabilities is this OPA version's builtins minus those that reach the
// network or expose the process environment: a policy must decide from its
// input alone, so that an audited input reproduces its decision.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	drop := map[string]bool{"http.send": true, "net.lookup_ip_addr": true, "opa.runtime": true}
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return drop[b.Name] })
	return c
}

// parseFiles parses every file as Rego v1.
func parseFiles(files []policyFile, caps *ast.Capabilities) (*policySet, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no *.rego files", ErrNoPolicy)
	}
	set := &policySet{revision: revisionOf(files), modules: make(map[string]*ast.Module, len(files))}
	opts := ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: caps}
	var errs []error
	for _, f := range files {
		m, err := ast.ParseModuleWithOpts(f.name, string(f.content), opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		set.modules[f.name] = m
		set.hasTests = set.hasTests || f.isTest()
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("parse policy: %w", err)
	}
	return set, nil
}

// compiled is one revision, ready to evaluate. Immutable once built;
// prepared queries are safe for concurrent use.
type compiled struct {
	revision string
	access   rego.PreparedEvalQuery
	authz    rego.PreparedEvalQuery
}

// compile compiles the non-test modules and prepares both queries.
func compile(ctx context.Context, set *policySet, caps *ast.Capabilities) (*compiled, error) {
	mods := make(map[string]*ast.Module, len(set.modules))
	for name, m := range set.modules {
		if !strings.HasSuffix(name, "_test.rego") {
			mods[name] = m
		}
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("%w: only test files", ErrNoPolicy)
	}
	c := ast.NewCompiler().WithCapabilities(caps).WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(mods); c.Failed() {
		return nil, fmt.Errorf("compile policy: %w", c.Errors)
	}
	for _, q := range []string{accessQuery, authzQuery} {
		if len(c.GetRulesExact(ast.MustParseRef(q))) == 0 {
			return nil, fmt.Errorf("%w: no rule %s", ErrNoPolicy, q)
		}
	}
	store := inmem.New()
	prepare := func(q string) (rego.PreparedEvalQuery, error) {
		pq, err := rego.New(
			rego.Query(q),
			rego.Compiler(c),
			rego.Store(store),
			rego.Capabilities(caps),
			rego.SetRegoVersion(ast.RegoV1),
			rego.StrictBuiltinErrors(true),
		).PrepareForEval(ctx)
		if err != nil {
			return rego.PreparedEvalQuery{}, fmt.Errorf("prepare %s: %w", q, err)
		}
		return pq, nil
	}
	access, err := prepare(accessQuery)
	if err != nil {
		return nil, err
	}
	authz, err := prepare(authzQuery)
	if err != nil {
		return nil, err
	}
	return &compiled{revision: set.revision, access: access, authz: authz}, nil
}

package policy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Config configures an Engine.
type Config struct {
	// FS holds the policy files: *.rego at its root; *_test.rego files are
	// Rego tests, not loaded for decisions. Required unless Dir is set.
	FS fs.FS
	// Dir, if set, is a directory on disk read instead of FS, by New,
	// Reload and Watch.
	Dir string
	// Timeout bounds each evaluation (wall clock: on a starved machine a
	// policy that takes a millisecond can take far longer). If zero: 1s.
	Timeout time.Duration
	// RunTestsOnLoad makes New reject a policy set whose own Rego tests
	// fail. If false, New does not run them.
	RunTestsOnLoad bool
	// SkipTestsOnReload makes Reload and Watch swap in a new policy set
	// without running its Rego tests. If false (the default), a reload
	// whose tests fail is rejected and the old policy stays in force.
	SkipTestsOnReload bool
	// Now is the clock. If nil: time.Now.
	Now func() time.Time
	// Logger receives reload outcomes and evaluation failures, never
	// inputs. If nil: discard.
	Logger *slog.Logger
}

// Engine evaluates the access and authorization policies. It is safe for
// concurrent use; Reload swaps the policy set atomically, so each
// evaluation sees exactly one revision.
type Engine struct {
	fsys     fs.FS // FS, or os.DirFS(Dir)
	dir      string
	timeout  time.Duration
	runTests bool // on New
	reTests  bool // on Reload
	now      func() time.Time
	log      *slog.Logger
	caps     *ast.Capabilities
	keys     inputKeys // read-only after New

	reloadMu sync.Mutex // serialises Reload; never held by evaluations
	current  atomic.Pointer[compiled]
}

// ErrTestsFailed is returned when a policy set's own Rego tests fail.
var ErrTestsFailed = errors.New("policy tests failed")

// New reads, compiles and prepares the policy set and, if
// cfg.RunTestsOnLoad, runs its Rego tests. It fails if the set does not
// compile, lacks data.loggate.access.decision or
// data.loggate.authz.decision, or (when asked) fails its tests.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	e := &Engine{
		fsys:     cfg.FS,
		dir:      cfg.Dir,
		timeout:  cfg.Timeout,
		runTests: cfg.RunTestsOnLoad,
		reTests:  !cfg.SkipTestsOnReload,
		now:      cfg.Now,
		log:      cfg.Logger,
		caps:     capabilities(),
		keys:     newInputKeys(),
	}
	if e.dir != "" {
		e.fsys = os.DirFS(e.dir)
	}
	if e.fsys == nil {
		return nil, errors.New("new policy engine: Config.FS or Config.Dir is required")
	}
	if e.timeout <= 0 {
		e.timeout = time.Second
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c, _, err := e.load(ctx, e.runTests)
	if err != nil {
		return nil, fmt.Errorf("new policy engine: %w", err)
	}
	e.current.Store(c)
	e.log.Info("policy loaded", "revision", c.revision)
	return e, nil
}

// load reads and compiles the policy files; it also returns the revision
// of the files read, if they could be read, for reporting a rejection.
func (e *Engine) load(ctx context.Context, withTests bool) (*compiled, string, error) {
	files, err := readFiles(e.fsys)
	if err != nil {
		return nil, "", err
	}
	set, err := parseFiles(files, e.caps)
	if err != nil {
		return nil, revisionOf(files), err
	}
	c, err := compile(ctx, set, e.caps)
	if err != nil {
		return nil, set.revision, err
	}
	if withTests && set.hasTests {
		results, err := runTests(ctx, set, e.caps)
		if err != nil {
			return nil, set.revision, err
		}
		if failed := failedTests(results); failed != "" {
			return nil, set.revision, fmt.Errorf("%w: %s", ErrTestsFailed, failed)
		}
	}
	return c, set.revision, nil
}

// Revision returns the revision of the policy set in force.
func (e *Engine) Revision() string { return e.current.Load().revision }

// Decide evaluates the access policy for in. It fails closed: on an
// evaluation error, timeout, undefined or malformed result it returns a
// denying Decision (Reasons "policy error: ...") together with the error.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	c := e.current.Load()
	id := newID()
	now := e.now()
	obj, err := e.eval(ctx, c.access, e.keys.access(in, now), now)
	var d Decision
	if err == nil {
		d, err = parseDecision(obj)
	}
	if err != nil {
		e.log.Error("access policy failed; denying", "decision_id", id, "revision", c.revision, "err", err)
		return Decision{ID: id, Revision: c.revision, Reasons: []string{"policy error: " + err.Error()}},
			fmt.Errorf("decide access: %w", err)
	}
	d.ID, d.Revision = id, c.revision
	return d, nil
}

// Authorize evaluates the authorization policy for in, failing closed
// like Decide.
func (e *Engine) Authorize(ctx context.Context, in ActionInput) (ActionDecision, error) {
	c := e.current.Load()
	id := newID()
	now := e.now()
	obj, err := e.eval(ctx, c.authz, e.keys.action(in, now), now)
	var d ActionDecision
	if err == nil {
		d, err = parseActionDecision(obj)
	}
	if err != nil {
		e.log.Error("authorization policy failed; denying", "decision_id", id, "revision", c.revision, "err", err)
		return ActionDecision{ID: id, Revision: c.revision, Reasons: []string{"policy error: " + err.Error()}},
			fmt.Errorf("authorize action: %w", err)
	}
	d.ID, d.Revision = id, c.revision
	return d, nil
}

// eval runs a prepared query under the engine's timeout, turning a panic
// inside OPA into an error so that it too denies.
func (e *Engine) eval(ctx context.Context, q rego.PreparedEvalQuery, input ast.Value, now time.Time) (obj map[string]any, err error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			obj, err = nil, fmt.Errorf("policy evaluation panicked: %v", r)
		}
	}()
	// OPA notices cancellation asynchronously, so a query may complete
	// under a context that is already done; such a result is not used.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	rs, err := q.Eval(ctx, rego.EvalParsedInput(input), rego.EvalTime(now))
	if ctxErr := ctx.Err(); ctxErr != nil {
		if err != nil {
			return nil, fmt.Errorf("evaluate: %w (%w)", ctxErr, err)
		}
		return nil, fmt.Errorf("evaluate: %w", ctxErr)
	}
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return resultObject(rs)
}

// newID returns "dec_" and 16 random hex digits.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "dec_" + hex.EncodeToString(b[:])
}

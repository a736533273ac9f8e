package policy_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/policies"
	"github.com/loggate/loggate/policy"
)

// copyDefaults writes the default policy files (tests included, if
// withTests) into a fresh directory and returns it.
func copyDefaults(t *testing.T, withTests bool) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := fs.ReadDir(policies.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !withTests && strings.HasSuffix(e.Name(), "_test.rego") {
			continue
		}
		b, err := fs.ReadFile(policies.FS, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, dir, e.Name(), string(b))
	}
	return dir
}

func writeFile(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editFile replaces old with new in a policy file, failing if old is absent.
func editFile(t *testing.T, dir, name, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", name, old)
	}
	writeFile(t, dir, name, strings.Replace(string(b), old, new, 1))
}

const (
	stagingCap       = `"max_duration_seconds": 28800, # 8h`
	editedStagingCap = `"max_duration_seconds": 21600, # 6h`
)

func stagingMax(t *testing.T, e *policy.Engine) time.Duration {
	t.Helper()
	d, err := e.Decide(t.Context(), policy.Input{Action: "probe", Requester: alice, Service: "payments", Env: "staging"})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	return d.MaxDuration
}

func TestReload(t *testing.T) {
	dir := copyDefaults(t, true)
	e, err := policy.New(t.Context(), policy.Config{Dir: dir, RunTestsOnLoad: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rev0 := e.Revision()
	if !strings.HasPrefix(rev0, "sha256:") || len(rev0) != len("sha256:")+64 {
		t.Fatalf("Revision = %q, want sha256:<64 hex>", rev0)
	}

	t.Run("unchanged files keep the revision", func(t *testing.T) {
		if err := e.Reload(t.Context()); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if got := e.Revision(); got != rev0 {
			t.Errorf("Revision = %q, want %q", got, rev0)
		}
	})

	t.Run("a compile error keeps the old policy", func(t *testing.T) {
		writeFile(t, dir, "broken.rego", "package loggate.access\n\nnot_a_rule := \n")
		defer os.Remove(filepath.Join(dir, "broken.rego"))
		err := e.Reload(t.Context())
		if err == nil {
			t.Fatal("Reload error = nil, want a compile error")
		}
		if got := e.Revision(); got != rev0 {
			t.Errorf("Revision = %q, want the old %q", got, rev0)
		}
		if got := stagingMax(t, e); got != 8*time.Hour {
			t.Errorf("staging cap = %v, want the old 8h", got)
		}
	})

	t.Run("failing Rego tests keep the old policy", func(t *testing.T) {
		editFile(t, dir, "access.rego", stagingCap, editedStagingCap)
		err := e.Reload(t.Context())
		if !errors.Is(err, policy.ErrTestsFailed) {
			t.Fatalf("Reload error = %v, want ErrTestsFailed", err)
		}
		if !strings.Contains(err.Error(), "test_staging_engineer_auto_approved") {
			t.Errorf("Reload error = %v, want it to name the failing test", err)
		}
		if got := e.Revision(); got != rev0 {
			t.Errorf("Revision = %q, want the old %q", got, rev0)
		}
		if got := stagingMax(t, e); got != 8*time.Hour {
			t.Errorf("staging cap = %v, want the old 8h", got)
		}
	})

	t.Run("a good change with updated tests is swapped in", func(t *testing.T) {
		editFile(t, dir, "access_test.rego", "d.max_duration_seconds == 8 * 3600", "d.max_duration_seconds == 6 * 3600")
		if err := e.Reload(t.Context()); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if got := e.Revision(); got == rev0 {
			t.Errorf("Revision unchanged after a successful reload")
		}
		if got := stagingMax(t, e); got != 6*time.Hour {
			t.Errorf("staging cap = %v, want the new 6h", got)
		}
	})
}

func TestReloadFromFS(t *testing.T) {
	e := newDefaultEngine(t)
	before := e.Revision()
	if err := e.Reload(t.Context()); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := e.Revision(); got != before {
		t.Errorf("Revision = %q, want %q", got, before)
	}
}

func TestWatch(t *testing.T) {
	dir := copyDefaults(t, false)
	e, err := policy.New(t.Context(), policy.Config{Dir: dir, Timeout: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rev0 := e.Revision()

	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan policy.ReloadEvent, 16)
	done := make(chan error, 1)
	go func() { done <- e.Watch(ctx, func(ev policy.ReloadEvent) { events <- ev }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch returned %v, want nil after cancel", err)
		}
	}()

	// The watcher starts asynchronously, so repeat the write until an
	// event arrives or the deadline passes.
	awaitEvent := func(write func()) policy.ReloadEvent {
		t.Helper()
		deadline := time.After(15 * time.Second)
		for {
			write()
			select {
			case ev := <-events:
				return ev
			case <-time.After(time.Second):
			case <-deadline:
				t.Fatal("no reload event before the deadline")
			}
		}
	}

	original := readFile(t, dir, "access.rego")
	edited := strings.Replace(original, stagingCap, editedStagingCap, 1)
	if edited == original {
		t.Fatalf("access.rego does not contain %q", stagingCap)
	}
	ev := awaitEvent(func() { writeFile(t, dir, "access.rego", edited) })
	if !ev.OK || ev.Err != nil || ev.OldRevision != rev0 || ev.Revision == rev0 || ev.Revision != e.Revision() {
		t.Fatalf("event = %+v, want OK from %s to the engine's new revision", ev, rev0)
	}
	if got := stagingMax(t, e); got != 6*time.Hour {
		t.Errorf("staging cap = %v, want the edited 6h", got)
	}

	rev1 := e.Revision()
	ev = awaitEvent(func() { writeFile(t, dir, "access.rego", "package loggate.access\n\ndecision := {\n") })
	if ev.OK || ev.Err == nil || ev.Revision != rev1 || ev.OldRevision != rev1 || ev.Candidate == rev1 || ev.Candidate == "" {
		t.Fatalf("event = %+v, want a rejection keeping %s", ev, rev1)
	}
	if got := e.Revision(); got != rev1 {
		t.Errorf("Revision = %q, want %q kept", got, rev1)
	}
}

func TestWatchNeedsDir(t *testing.T) {
	e := newDefaultEngine(t)
	if err := e.Watch(t.Context(), nil); err == nil {
		t.Error("Watch without Dir returned nil, want an error")
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDecideDuringReload runs decisions while the policy is swapped back
// and forth; every decision must come from one whole revision (run with
// -race to check the swap).
func TestDecideDuringReload(t *testing.T) {
	dir := copyDefaults(t, false)
	e, err := policy.New(t.Context(), policy.Config{Dir: dir, Timeout: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	original := readFile(t, dir, "access.rego")
	edited := strings.Replace(original, stagingCap, editedStagingCap, 1)
	caps := map[string]time.Duration{}

	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(done)
		for i := range 10 {
			body := original
			if i%2 == 0 {
				body = edited
			}
			if err := os.WriteFile(filepath.Join(dir, "access.rego"), []byte(body), 0o644); err != nil {
				errs <- err
				return
			}
			if err := e.Reload(t.Context()); err != nil {
				errs <- err
				return
			}
		}
	}()
	in := policy.Input{Action: "probe", Requester: alice, Service: "payments", Env: "staging"}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		d, err := e.Decide(t.Context(), in)
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if prev, ok := caps[d.Revision]; ok && prev != d.MaxDuration {
			t.Fatalf("revision %s gave caps %v and %v", d.Revision, prev, d.MaxDuration)
		}
		caps[d.Revision] = d.MaxDuration
	}
	select {
	case err := <-errs:
		t.Fatalf("reload: %v", err)
	default:
	}
	if len(caps) == 0 {
		t.Fatal("no decisions made")
	}
}

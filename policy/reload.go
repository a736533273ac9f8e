package policy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fsnotify/fsnotify"
)

// reloadDebounce is how long Watch waits after the last file event before
// reloading, so an editor's write-rename-chmod burst reloads once.
const reloadDebounce = 200 * time.Millisecond

// Reload re-reads the policy files (Dir, or FS), compiles them and, unless
// Config.SkipTestsOnReload, runs their Rego tests; only if all that
// succeeds does the new revision replace the old. On failure the old
// policy stays in force and the error says why.
func (e *Engine) Reload(ctx context.Context) error {
	_, err := e.reload(ctx)
	return err
}

func (e *Engine) reload(ctx context.Context) (ReloadEvent, error) {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	old := e.current.Load().revision
	c, candidate, err := e.load(ctx, e.reTests)
	if err != nil {
		e.log.Warn("policy reload rejected; keeping old policy", "revision", old, "candidate", candidate, "err", err)
		err = fmt.Errorf("reload policy: %w", err)
		return ReloadEvent{OK: false, Revision: old, OldRevision: old, Candidate: candidate, Err: err}, err
	}
	e.current.Store(c)
	if c.revision != old {
		e.log.Info("policy reloaded", "revision", c.revision, "old_revision", old)
	}
	return ReloadEvent{OK: true, Revision: c.revision, OldRevision: old, Candidate: c.revision}, nil
}

// Watch reloads the policy whenever something in Config.Dir changes,
// debounced by 200ms, and reports each reload that changed the revision or
// was rejected to onEvent (which may be nil), from Watch's goroutine. It returns when ctx is done (nil) or if the
// directory cannot be watched. It requires Config.Dir.
func (e *Engine) Watch(ctx context.Context, onEvent func(ReloadEvent)) error {
	if e.dir == "" {
		return errors.New("watch policy: Config.Dir is not set")
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch policy: %w", err)
	}
	defer w.Close()
	if err := w.Add(e.dir); err != nil {
		return fmt.Errorf("watch policy %s: %w", e.dir, err)
	}

	// Stopped until the first event; since Go 1.23 a stopped timer's
	// channel never delivers a stale value, so no drain is needed.
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch policy: watcher closed")
			}
			// Any change counts, not only *.rego names: a Kubernetes
			// ConfigMap update swaps a "..data" symlink. A reload that
			// finds the same revision is not reported.
			if ev.Op == fsnotify.Chmod {
				continue
			}
			debounce.Reset(reloadDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch policy: watcher closed")
			}
			e.log.Warn("policy watcher error", "err", err)
		case <-debounce.C:
			ev, _ := e.reload(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if onEvent != nil && (!ev.OK || ev.Revision != ev.OldRevision) {
				onEvent(ev)
			}
		}
	}
}

package logs

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Backlog persists published entries so that sequence numbers continue and
// cursors resume after a restart. The hub writes to it from one goroutine.
type Backlog interface {
	// Append stores entries (Seq set, in seq order per stream).
	Append(ctx context.Context, entries []Entry) error
	// Range returns up to limit entries of s with seq > afterSeq and, unless
	// since is zero, Time at or after since, in seq order (limit <= 0: all).
	Range(ctx context.Context, s Stream, afterSeq int64, since time.Time, limit int) ([]Entry, error)
	// LastSeq returns the highest seq stored for s, or 0.
	LastSeq(ctx context.Context, s Stream) (int64, error)
	// Trim deletes the entries of s beyond the retention.
	Trim(ctx context.Context, s Stream, r Retention) error
}

// StreamLister is implemented by a Backlog that can list its streams; the
// hub then knows them from the start.
type StreamLister interface {
	Streams(ctx context.Context) ([]Stream, error)
}

var _ StreamLister = (*SQLiteBacklog)(nil)

const (
	// maxPendingEntries is how far the backlog may fall behind before
	// Publish waits for it (backpressure on ingest, never on viewers).
	maxPendingEntries = 65536
	// trimEvery is how often each stream is trimmed on disk.
	trimEvery = time.Minute
)

// backlogWriter batches published entries into Backlog.Append calls from a
// single goroutine, so the disk never stalls fan-out.
type backlogWriter struct {
	backlog   Backlog
	log       *slog.Logger
	now       func() time.Time
	retention func(env string) Retention

	kick chan struct{} // capacity 1: pending grew
	stop chan struct{} // closed by close

	mu       sync.Mutex // guards the fields below
	pending  []Entry
	enqueued uint64        // entries ever enqueued
	written  uint64        // entries ever handed to Append (or failed)
	progress chan struct{} // closed and replaced whenever written advances
	stopped  bool
	lastErr  error

	// lastTrim is owned by the run goroutine.
	lastTrim map[Stream]time.Time
}

func newBacklogWriter(b Backlog, log *slog.Logger, now func() time.Time, ret func(string) Retention) *backlogWriter {
	return &backlogWriter{
		backlog: b, log: log, now: now, retention: ret,
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		progress: make(chan struct{}),
		lastTrim: make(map[Stream]time.Time),
	}
}

func (w *backlogWriter) enqueue(es []Entry) {
	w.mu.Lock()
	w.pending = append(w.pending, es...)
	w.enqueued += uint64(len(es))
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// waitRoom blocks while the writer is more than maxPendingEntries behind.
func (w *backlogWriter) waitRoom(ctx context.Context) error {
	for {
		w.mu.Lock()
		behind := w.enqueued - w.written
		ch, stopped := w.progress, w.stopped
		w.mu.Unlock()
		if behind <= maxPendingEntries || stopped {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// flush waits until everything enqueued so far was written.
func (w *backlogWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	target := w.enqueued
	w.mu.Unlock()
	for {
		w.mu.Lock()
		done, ch, stopped := w.written >= target, w.progress, w.stopped
		w.mu.Unlock()
		if done || stopped {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run writes batches until close; the last pending entries are written
// before it returns.
func (w *backlogWriter) run() {
	ctx := context.Background()
	for {
		stopping := false
		select {
		case <-w.kick:
		case <-w.stop:
			stopping = true
		}
		w.writeOnce(ctx)
		if stopping {
			w.writeOnce(ctx) // anything enqueued while stopping
			w.mu.Lock()
			w.stopped = true
			close(w.progress)
			w.progress = make(chan struct{})
			w.mu.Unlock()
			return
		}
	}
}

func (w *backlogWriter) writeOnce(ctx context.Context) {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) > 0 {
		if err := w.backlog.Append(ctx, batch); err != nil {
			// The entries stay in memory for live viewers and resumes; only
			// a restart loses them.
			w.log.Error("log backlog append failed", "entries", len(batch), "err", err)
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
		}
		w.trim(ctx, batch)
	}
	w.mu.Lock()
	w.written += uint64(len(batch))
	close(w.progress)
	w.progress = make(chan struct{})
	w.mu.Unlock()
}

// trim applies the retention on disk to the streams in batch, at most once
// per trimEvery per stream.
func (w *backlogWriter) trim(ctx context.Context, batch []Entry) {
	now := w.now()
	for i := range batch {
		s := batch[i].Stream()
		if last, ok := w.lastTrim[s]; ok && now.Sub(last) < trimEvery {
			continue
		}
		w.lastTrim[s] = now
		if err := w.backlog.Trim(ctx, s, w.retention(s.Env)); err != nil {
			w.log.Error("log backlog trim failed", "stream", s.String(), "err", err)
		}
	}
}

// close asks the writer to stop; run writes what is pending and returns.
// The hub waits for run to return before calling err.
func (w *backlogWriter) close() { close(w.stop) }

// err returns the last Append error, if any.
func (w *backlogWriter) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lastErr != nil {
		return fmt.Errorf("log backlog: %w", w.lastErr)
	}
	return nil
}

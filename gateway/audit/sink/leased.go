package sink

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Leaser runs lead while this process holds an exclusive lease shared with
// other processes (cluster.Lease): lead's context ends when the lease is
// lost, and term names the holding (a new one each time it is taken).
type Leaser interface {
	Run(ctx context.Context, lead func(ctx context.Context, term string))
}

// RunLeased runs one Runner per config while l's lease is held here, so
// that of several gateways sharing an audit trail only one delivers at a
// time, until ctx ends; then it closes every Sink. Each term makes fresh
// runners whose cursors come from cursor(config name, term): kept where
// every gateway reads them, a new holder resumes where the last one
// stopped (at least once: receivers deduplicate on the event id). Each
// config's CursorFile and Cursor are ignored. log (nil: discard) receives
// start-up errors; a term whose runners cannot start gives the lease up
// after a second.
func RunLeased(ctx context.Context, l Leaser, cursor func(name, term string) CursorStore, sinks []Config, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		for _, c := range sinks {
			if err := c.Sink.Close(); err != nil {
				log.Warn("audit sink close", "sink", c.Name, "err", err)
			}
		}
	}()
	l.Run(ctx, func(ctx context.Context, term string) {
		runners := make([]*Runner, 0, len(sinks))
		for _, c := range sinks {
			c.CursorFile = ""
			c.Cursor = cursor(c.Name, term)
			c.Sink = keepOpen{c.Sink}
			r, err := NewRunner(c)
			if err != nil {
				// Most likely the cursor could not be read: give the
				// lease up and try again later.
				log.Error("audit sinks not started", "sink", c.Name, "err", err)
				t := time.NewTimer(time.Second)
				defer t.Stop()
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				return
			}
			runners = append(runners, r)
		}
		var wg sync.WaitGroup
		for _, r := range runners {
			log.Info("audit sink running here", "sink", r.Name(), "cursor", r.Cursor())
			wg.Go(func() { r.Run(ctx) })
		}
		wg.Wait()
	})
}

// keepOpen stops a term's Runner from closing a Sink the next term reuses.
type keepOpen struct{ Sink }

func (keepOpen) Close() error { return nil }

package cluster

import (
	"context"
	"log/slog"
	"sync"

	"github.com/loggate/loggate/gateway/audit/sink"
)

// RunSinks runs the audit sink runners described by sinks on whichever
// replica holds l, one replica at a time, until ctx ends; then it closes
// every sink. Each term makes fresh runners whose cursors live in Redis
// (NewLeaseCursor, named by sink.Config.Name), so a new holder resumes
// where the last one left off: at least once, as a receiver deduplicating
// on event id expects. The CursorFile and Cursor of each config are
// ignored. log (nil: discard) receives runner start-up errors.
func RunSinks(ctx context.Context, l *Lease, sinks []sink.Config, log *slog.Logger) {
	defer func() {
		for _, c := range sinks {
			if err := c.Sink.Close(); err != nil && log != nil {
				log.Warn("audit sink close", "sink", c.Name, "err", err)
			}
		}
	}()
	l.Run(ctx, func(ctx context.Context, token string) {
		runners := make([]*sink.Runner, 0, len(sinks))
		for _, c := range sinks {
			c.CursorFile = ""
			c.Cursor = NewLeaseCursor(l, c.Name, token)
			c.Sink = keepOpen{c.Sink}
			r, err := sink.NewRunner(c)
			if err != nil {
				// Most likely Redis could not be read: give the lease up
				// and try again later.
				if log != nil {
					log.Error("audit sinks not started", "sink", c.Name, "err", err)
				}
				sleepCtx(ctx, l.retry)
				return
			}
			runners = append(runners, r)
		}
		var wg sync.WaitGroup
		for _, r := range runners {
			if log != nil {
				log.Info("audit sink running on this replica", "sink", r.Name(), "cursor", r.Cursor())
			}
			wg.Go(func() { r.Run(ctx) })
		}
		wg.Wait()
	})
}

// keepOpen stops a term's Runner from closing a sink the next term reuses.
type keepOpen struct{ sink.Sink }

func (keepOpen) Close() error { return nil }

var _ sink.Source = (*Audit)(nil)

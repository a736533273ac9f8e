package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// --audit-checkpoint-file: every signed checkpoint is appended to an
// append-only file, meant to live on another mount than the data
// directory, so a copy exists that whoever rewrites the trail does not
// hold. On one machine the store hands over each checkpoint it commits
// (audit.Config.OnCheckpoint); with --redis, where every append signs one,
// each replica appends the newest checkpoint every
// --audit-checkpoint-interval, at start and at shutdown.

// openCheckpointLog opens the file of --audit-checkpoint-file; nil when the
// flag is empty. Closing it is added to sp's closers, which run in reverse:
// call this before opening the trail so the trail's final checkpoint is
// written before the file closes.
func openCheckpointLog(path string, sp *stateParts) (*audit.CheckpointLog, error) {
	if path == "" {
		return nil, nil
	}
	cl, err := audit.OpenCheckpointLog(path)
	if err != nil {
		return nil, fmt.Errorf("--audit-checkpoint-file: %w", err)
	}
	sp.closers = append(sp.closers, cl.Close)
	return cl, nil
}

// pollCheckpoints appends latest's checkpoint to cl now, every interval and
// once more when the returned stop function is called.
func pollCheckpoints(cl *audit.CheckpointLog, latest func(context.Context) (audit.Checkpoint, error),
	interval time.Duration, log *slog.Logger) (stop func() error) {
	if interval <= 0 {
		interval = time.Minute
	}
	publish := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cp, err := latest(ctx)
		if err == nil {
			err = cl.Append(cp)
		}
		if err != nil {
			log.Error("audit checkpoint not published", "err", err)
		}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		publish()
		for {
			select {
			case <-t.C:
				publish()
			case <-quit:
				publish()
				return
			}
		}
	}()
	return func() error { close(quit); <-done; return nil }
}

package gateway

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// openViewLister is implemented by audit stores that can find views whose
// stream.opened has no stream.closed (the process died mid-view).
type openViewLister interface {
	OpenViews(ctx context.Context) ([]audit.Event, error)
}

// RecoverInterruptedViews writes the stream.closed events a crash left
// out: outcome "interrupted", with the view's counts as last saved locally
// (Config.ViewCounts: counts_from "checkpoint", counts_at), else those of
// its last stream.progress event (counts_from: that event's id), else
// zeros (counts_from "none"). A checkpoint carries the view's replay
// record as of that save (details.replay), so the view replays and
// verifies up to it. A view whose stream.closed waits in the spool
// is not open: the drainer appends its real close. Call it at start-up,
// before serving. It returns how many views it closed.
func (s *Server) RecoverInterruptedViews(ctx context.Context) (int, error) {
	lister, ok := s.cfg.Audit.(openViewLister)
	if !ok {
		return 0, nil
	}
	// Read the spool before the trail: a close drained in between is then
	// seen in the trail, never missed by both.
	spooled := map[string]bool{}
	if s.cfg.Spool != nil {
		for _, ev := range s.cfg.Spool.Pending() {
			if ev.Action == audit.ActionStreamClosed {
				spooled[fmt.Sprint(ev.Details[audit.DetailViewID])] = true
			}
		}
	}
	views, err := lister.OpenViews(ctx)
	if err != nil {
		return 0, fmt.Errorf("find interrupted views: %w", err)
	}
	n := 0
	for _, v := range views {
		viewID, _ := v.Details["view_id"].(string)
		if spooled[viewID] {
			continue
		}
		details := map[string]any{"view_id": viewID, "close_reason": "interrupted", "opened_seq": v.Seq,
			"entries": 0, "bytes": 0, "dropped": 0, "counts_from": "none"}
		var fromProgress int64 = -1
		if p, ok := s.lastProgress(ctx, v.Target.GrantID, viewID); ok {
			for _, k := range []string{"entries", "bytes", "dropped", "sampled", "seconds"} {
				if val, ok := p.Details[k]; ok {
					details[k] = val
				}
			}
			details["counts_from"] = p.ID
			details["counts_at"] = p.Time.UTC().Format(time.RFC3339Nano)
			fromProgress, _ = strconv.ParseInt(fmt.Sprint(p.Details["entries"]), 10, 64)
		}
		if s.cfg.ViewCounts != nil {
			if c, ok := s.cfg.ViewCounts.Load(viewID); ok && c.Entries >= fromProgress {
				details["entries"], details["bytes"], details["dropped"], details["sampled"] = c.Entries, c.Bytes, c.Dropped, c.Sampled
				details["seconds"] = c.Seconds
				details["counts_from"] = "checkpoint"
				details["counts_at"] = c.At.UTC().Format(time.RFC3339Nano)
				details["counts_interval_ms"] = s.cfg.ViewCountsInterval.Milliseconds()
				if c.Digest != "" {
					details["sha256"], details["digest_kind"] = c.Digest, c.DigestKind
				}
				if c.EntriesDigest != "" {
					details["entries_sha256"] = c.EntriesDigest
					// The record saved with these counts: the view replays
					// up to this save.
					if rec, ok := restoreRecord(c.Record, c.RecordTo); ok {
						details["replay"] = rec
					}
				}
				if c.Paused > 0 {
					details["paused"] = c.Paused
				}
				if len(c.Redactions) > 0 {
					details["redactions"] = c.Redactions
				}
			}
		}
		if err := s.record(ctx, nil, audit.Event{Action: "stream.closed", Actor: v.Actor, Outcome: "interrupted",
			Reason: "the gateway stopped before the view ended", Target: v.Target, Details: details}); err != nil {
			return n, err
		}
		n++
	}
	if s.cfg.ViewCounts != nil {
		// Every view this replica served is closed now (in the trail or
		// the spool): its saved counts have done their job.
		if err := s.cfg.ViewCounts.RemoveAll(); err != nil {
			s.log.Warn("remove saved view counts", "err", err)
		}
	}
	return n, nil
}

// lastProgress finds the newest stream.progress event of a view.
func (s *Server) lastProgress(ctx context.Context, grantID, viewID string) (audit.Event, bool) {
	page, err := s.cfg.Audit.Search(ctx, audit.Query{Action: "stream.progress", GrantID: grantID, Limit: 1000})
	if err != nil {
		return audit.Event{}, false
	}
	for _, ev := range page.Items { // newest first
		if id, _ := ev.Details["view_id"].(string); id == viewID {
			return ev, true
		}
	}
	return audit.Event{}, false
}

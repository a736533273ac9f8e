package gateway

import (
	"context"
	"fmt"

	"github.com/loggate/loggate/gateway/audit"
)

// openViewLister is implemented by audit stores that can find views whose
// stream.opened has no stream.closed (the process died mid-view).
type openViewLister interface {
	OpenViews(ctx context.Context) ([]audit.Event, error)
}

// RecoverInterruptedViews writes the stream.closed events a crash left
// out: outcome "interrupted", with the counts of the view's last
// stream.progress event when there is one. Call it at start-up, before
// serving. It returns how many views it closed.
func (s *Server) RecoverInterruptedViews(ctx context.Context) (int, error) {
	lister, ok := s.cfg.Audit.(openViewLister)
	if !ok {
		return 0, nil
	}
	views, err := lister.OpenViews(ctx)
	if err != nil {
		return 0, fmt.Errorf("find interrupted views: %w", err)
	}
	for _, v := range views {
		viewID, _ := v.Details["view_id"].(string)
		details := map[string]any{"view_id": viewID, "close_reason": "interrupted", "opened_seq": v.Seq,
			"entries": 0, "bytes": 0, "dropped": 0, "counts_from": "none"}
		if p, ok := s.lastProgress(ctx, v.Target.GrantID, viewID); ok {
			for _, k := range []string{"entries", "bytes", "dropped", "seconds"} {
				if val, ok := p.Details[k]; ok {
					details[k] = val
				}
			}
			details["counts_from"] = p.ID
		}
		if err := s.record(ctx, nil, audit.Event{Action: "stream.closed", Actor: v.Actor, Outcome: "interrupted",
			Reason: "the gateway stopped before the view ended", Target: v.Target, Details: details}); err != nil {
			return 0, err
		}
	}
	return len(views), nil
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

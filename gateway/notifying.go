package gateway

import (
	"context"
	"time"

	"github.com/loggate/loggate/gateway/store"
)

// notify tells the Notifier about a request's new state. Delivery is the
// notifier's business (a persisted outbox); queueing failures are logged.
func (s *Server) notify(ctx context.Context, req store.Request, g *store.Grant) {
	if s.cfg.Notifier == nil {
		return
	}
	kind := "request." + req.State
	switch req.State {
	case store.StatePending:
		kind = "request.created"
	case store.StateApproved:
		if req.BreakGlass {
			kind = "request.break_glass"
		}
	}
	payload := map[string]any{"request": s.viewRequest(req, g)}
	if err := s.cfg.Notifier.Notify(ctx, kind, payload); err != nil {
		s.log.Error("queue notification", "kind", kind, "err", err)
	}
}

func (s *Server) notifyGrant(ctx context.Context, kind string, g store.Grant) {
	if s.cfg.Notifier == nil {
		return
	}
	payload := map[string]any{"grant": s.viewGrant(g), "at": s.now().UTC().Format(time.RFC3339)}
	if err := s.cfg.Notifier.Notify(ctx, kind, payload); err != nil {
		s.log.Error("queue notification", "kind", kind, "err", err)
	}
}

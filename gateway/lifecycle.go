package gateway

import (
	"context"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// Run drives time-based transitions until ctx ends: grants expire, pending
// requests lapse, expiry warnings go out. Live tails enforce expiry on their
// own timers; this loop makes the records say so.
// It returns when ctx ends; the caller owns the goroutine running it.
func (s *Server) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	beat := time.NewTicker(levelHeartbeat)
	defer beat.Stop()
	// A restarted replica's old views (in other replicas' state) end now.
	s.publishLevels(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.levelChanges(ctx, s.levels.tick(s.now()), false)
			s.sweep(ctx)
		case <-beat.C:
			s.publishLevels(ctx, false)
		}
	}
}

// sweep runs one pass of the time-based transitions.
func (s *Server) sweep(ctx context.Context) {
	now := s.now()
	grants, _, err := s.cfg.Store.Grants(ctx, store.Query{State: store.GrantActive, Limit: 1000})
	if err != nil {
		s.log.Warn("sweep: list grants", "err", err)
		return
	}
	for _, g := range grants {
		switch {
		case !now.Before(g.ExpiresAt):
			s.expire(ctx, g, now)
		case !g.ExpiryWarned && g.ExpiresAt.Sub(now) <= 5*time.Minute:
			if err := s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
				cur, err := tx.Grant(g.ID)
				if err != nil || cur.ExpiryWarned {
					return err
				}
				cur.ExpiryWarned = true
				return tx.PutGrant(&cur)
			}); err == nil {
				s.notifyGrant(ctx, "grant.expiring", g)
			}
		}
	}
	reqs, _, err := s.cfg.Store.Requests(ctx, store.Query{State: store.StatePending, Limit: 1000})
	if err != nil {
		s.log.Warn("sweep: list requests", "err", err)
		return
	}
	for _, r := range reqs {
		if !r.PendingUntil.IsZero() && !now.Before(r.PendingUntil) {
			s.lapse(ctx, r, now)
		}
	}
}

func (s *Server) expire(ctx context.Context, g store.Grant, now time.Time) {
	if err := s.record(ctx, nil, audit.Event{Action: "grant.expired", Actor: systemActor, Outcome: "success",
		Target: grantTarget(g), Details: map[string]any{"expires_at": g.ExpiresAt.UTC().Format(time.RFC3339)}}); err != nil {
		s.log.Error("sweep: cannot audit expiry; will retry", "grant", g.ID, "err", err)
		return
	}
	err := s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		cur, err := tx.Grant(g.ID)
		if err != nil {
			return err
		}
		if cur.State != store.GrantActive || now.Before(cur.ExpiresAt) {
			return nil // revoked or extended meanwhile
		}
		cur.State, cur.EndedAt = store.GrantExpired, cur.ExpiresAt
		return tx.PutGrant(&cur)
	})
	if err != nil {
		s.log.Error("sweep: expire grant", "grant", g.ID, "err", err)
		return
	}
	s.broadcast(ctx, ControlEvent{Kind: ControlExpired, GrantID: g.ID})
}

func (s *Server) lapse(ctx context.Context, r store.Request, now time.Time) {
	if err := s.record(ctx, nil, audit.Event{Action: "request.lapsed", Actor: systemActor, Outcome: "success",
		Target: audit.Target{RequestID: r.ID, Service: r.Service, Env: r.Env},
		Reason: "nobody decided before " + r.PendingUntil.UTC().Format(time.RFC3339)}); err != nil {
		s.log.Error("sweep: cannot audit lapse; will retry", "request", r.ID, "err", err)
		return
	}
	err := s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		cur, err := tx.Request(r.ID)
		if err != nil {
			return err
		}
		if cur.State != store.StatePending {
			return nil
		}
		cur.State, cur.UpdatedAt, cur.PendingUntil = store.StateLapsed, now, time.Time{}
		return tx.PutRequest(&cur)
	})
	if err != nil {
		s.log.Error("sweep: lapse request", "request", r.ID, "err", err)
	}
}

// Shutdown ends every live tail with close code 4003 and waits (until ctx
// ends) for them to record stream.closed. Pending counts of refused
// source tokens are recorded too.
func (s *Server) Shutdown(ctx context.Context) {
	s.shutdownOnce.Do(func() { close(s.shutdown) })
	defer s.sourceBursts.close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.tails.count() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

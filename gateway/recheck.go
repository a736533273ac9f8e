package gateway

import (
	"context"
	"errors"
	"strings"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// Re-checking identity on open views. A tail opened with a browser session
// refreshes that session's tokens at the provider every
// Config.IdentityRecheckInterval. If the provider refuses the refresh (the
// person was disabled, their grant revoked) or the refreshed identity no
// longer satisfies the access policy for the stream (a required group is
// gone), the grant is revoked with reason "identity" (grant.revoked, actor
// system) and its tails end with CloseRevoked. A provider that cannot be
// reached keeps the view until the next interval; a session without a
// refresh token cannot be re-checked and ends with the grant or session.

// ReasonIdentity is the grant.revoked reason when identity no longer allows the view.
const ReasonIdentity = "identity"

// recheckView reports whether the holder of t may keep viewing g, and why not.
func (s *Server) recheckView(ctx context.Context, t *tailSession, g store.Grant) (keep bool, why string) {
	id, err := s.cfg.Sessions.RecheckSession(ctx, t.session)
	var te *auth.TokenError
	switch {
	case errors.Is(err, auth.ErrNoRecheck):
		return true, ""
	case errors.As(err, &te) && te.Reason == auth.ReasonProvider:
		s.log.Warn("view identity re-check: provider error; keeping the view until the next check", "grant", g.ID, "detail", te.Detail)
		return true, ""
	case errors.As(err, &te):
		return false, "the identity provider refused to refresh the session (" + te.Reason + ")"
	case err != nil:
		s.log.Warn("view identity re-check failed; keeping the view until the next check", "grant", g.ID, "err", err)
		return true, ""
	}
	if id.ID() != g.Holder.ID {
		return false, "the refreshed identity is someone else"
	}
	d, err := s.cfg.Policy.Decide(ctx, policy.Input{Action: "probe", Requester: policySubject(subjectOf(id)),
		Service: g.Service, Env: g.Env, BreakGlass: g.BreakGlass})
	if err != nil {
		return false, "policy error while re-checking the holder's identity"
	}
	if !d.Allow {
		return false, "policy no longer allows the holder: " + strings.Join(d.Reasons, "; ")
	}
	return true, ""
}

// revokeForIdentity revokes g because its holder's identity no longer
// allows it: grant.revoked (actor system, reason identity) first, then the
// store, then every replica's tails.
func (s *Server) revokeForIdentity(ctx context.Context, g store.Grant, why string) error {
	now := s.now()
	ev := audit.Event{Action: "grant.revoked", Actor: audit.Actor{Kind: "system", Name: "identity re-check"},
		Outcome: "success", Reason: ReasonIdentity, Target: grantTarget(g),
		Details: map[string]any{"detail": why, "holder": g.Holder.ID}}
	if err := s.record(ctx, nil, ev); err != nil {
		return err
	}
	err := s.cfg.Store.Update(ctx, func(tx *store.Txn) error {
		cur, err := tx.Grant(g.ID)
		if err != nil {
			return err
		}
		if !cur.ActiveAt(now) {
			return nil // already ended
		}
		cur.State, cur.EndedAt, cur.RevokeReason = store.GrantRevoked, now, ReasonIdentity+": "+why
		g = cur
		return tx.PutGrant(&cur)
	})
	if err != nil {
		s.recordNotApplied(ctx, nil, ev, err)
		return err
	}
	s.broadcast(ctx, ControlEvent{Kind: ControlRevoked, GrantID: g.ID, Reason: ReasonIdentity + ": " + why})
	s.notifyGrant(ctx, "grant.revoked", g)
	return nil
}

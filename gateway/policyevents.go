package gateway

import (
	"context"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/policy"
)

// RecordPolicyReload audits a policy reload attempt: policy.reloaded when
// the new files took effect, policy.rejected when they did not compile or
// failed their own tests (the old policy stays in force).
func (s *Server) RecordPolicyReload(ctx context.Context, ev policy.ReloadEvent) {
	ae := audit.Event{Action: "policy.reloaded", Actor: systemActor, Outcome: "success", PolicyRevision: ev.Revision,
		Details: map[string]any{"old_revision": ev.OldRevision, "candidate_revision": ev.Candidate}}
	if !ev.OK {
		ae.Action, ae.Outcome = "policy.rejected", "failure"
		if ev.Err != nil {
			ae.Reason = truncate(ev.Err.Error(), 2000)
		}
	}
	if err := s.record(ctx, nil, ae); err != nil {
		s.log.Error("could not audit policy reload", "ok", ev.OK, "err", err)
	}
	if ev.OK {
		s.log.Info("policy reloaded", "revision", ev.Revision, "old_revision", ev.OldRevision)
	} else {
		s.log.Warn("policy rejected; keeping the old one", "revision", ev.Revision, "err", ev.Err)
	}
}

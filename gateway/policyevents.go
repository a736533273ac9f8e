package gateway

import (
	"context"
	"time"

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

// PolicyChanged is the policy watcher's callback: it audits the reload and,
// when the new policy took effect, tells the other replicas to reload too.
func (s *Server) PolicyChanged(ctx context.Context, ev policy.ReloadEvent) {
	s.RecordPolicyReload(ctx, ev)
	if ev.OK && s.cfg.Broadcast != nil {
		if err := s.cfg.Broadcast.Publish(ctx, ControlEvent{Kind: ControlPolicy, Reason: ev.Revision}); err != nil {
			s.log.Error("broadcast policy change", "err", err)
		}
	}
}

// reloader is a policy engine that can re-read its files.
type reloader interface {
	Reload(ctx context.Context) error
}

// reloadPolicy re-reads the policy because another replica saw a change,
// unless this replica already runs that revision.
func (s *Server) reloadPolicy(revision string) {
	r, ok := s.cfg.Policy.(reloader)
	old := s.cfg.Policy.Revision()
	if !ok || revision == old {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.Reload(ctx)
	s.RecordPolicyReload(ctx, policy.ReloadEvent{OK: err == nil, Revision: s.cfg.Policy.Revision(),
		OldRevision: old, Candidate: revision, Err: err})
	if err == nil && s.cfg.Policy.Revision() != revision {
		s.log.Warn("policy reloaded on another replica's word, but the files here differ",
			"here", s.cfg.Policy.Revision(), "there", revision)
	}
}

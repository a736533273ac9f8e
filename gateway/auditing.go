package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// systemActor is loggate itself: policy auto-approvals, expiry, lapses.
var systemActor = audit.Actor{Kind: "system", Subject: "loggate"}

func userActor(who auth.Identity) audit.Actor {
	return audit.Actor{Kind: "user", Issuer: who.Issuer, Subject: who.Subject, Email: who.Email,
		Name: who.Display(), Groups: who.Groups}
}

func subjectActor(s store.Subject) audit.Actor {
	return audit.Actor{Kind: "user", Issuer: s.Issuer, Subject: s.Subject, Email: s.Email, Name: s.Name, Groups: s.Groups}
}

// record appends ev to the audit trail, filling in the request's
// correlation id, client address and user agent. It returns errAudit (503)
// when the trail cannot take the event: callers must not carry out the
// action then.
func (s *Server) record(ctx context.Context, r *http.Request, ev audit.Event) error {
	ev.RequestID = requestID(ctx)
	ev.SourceAddr = clientAddrFrom(ctx)
	if r != nil {
		ev.UserAgent = truncate(r.UserAgent(), 256)
	}
	if _, err := s.cfg.Audit.Append(ctx, ev); err != nil {
		s.metrics.auditFailures.Inc()
		return errAudit(err)
	}
	if m, ok := ctx.Value(keyRefusalMark).(*refusalMark); ok && ev.Outcome == audit.OutcomeDenied {
		m.recorded.Store(true)
	}
	s.metrics.auditEvents.WithLabelValues(ev.Action).Inc()
	s.observeEvent(ev)
	return nil
}

// recordAll appends events in order, stopping at the first failure.
func (s *Server) recordAll(ctx context.Context, r *http.Request, evs ...audit.Event) error {
	for _, ev := range evs {
		if err := s.record(ctx, r, ev); err != nil {
			return err
		}
	}
	return nil
}

// RecordAuth turns an authenticator event into an audit event. The gateway
// passes it as the authenticator's OnEvent hook; an error fails the login.
func (s *Server) RecordAuth(ctx context.Context, ev auth.Event) error {
	ae := audit.Event{Action: ev.Action, Outcome: "success", Reason: ev.Reason,
		SourceAddr: ev.RemoteAddr, UserAgent: truncate(ev.UserAgent, 256), RequestID: requestID(ctx),
		Details: map[string]any{}}
	if ev.Identity != nil {
		ae.Actor = userActor(*ev.Identity)
	} else {
		ae.Actor = audit.Actor{Kind: audit.ActorUser, Name: "(unauthenticated)"}
	}
	if ev.Action == "auth.failed" {
		ae.Outcome = "failure"
	}
	if ev.TokenHash != "" {
		ae.Details["token_hash"] = ev.TokenHash
	}
	if ev.Detail != "" {
		ae.Details["detail"] = ev.Detail
	}
	if ev.Count > 1 {
		ae.Details["count"] = ev.Count
	}
	if _, err := s.cfg.Audit.Append(ctx, ae); err != nil {
		s.metrics.auditFailures.Inc()
		return err
	}
	s.metrics.auditEvents.WithLabelValues(ae.Action).Inc()
	s.observeEvent(ae)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n]
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// recordNotApplied follows up an action audited as a success whose store
// update then lost a race (409): the trail must not show it as done. The
// follow-up repeats ev with outcome "error"; other errors need none (the
// store is down, and the caller answers 503).
func (s *Server) recordNotApplied(ctx context.Context, r *http.Request, ev audit.Event, err error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		return
	}
	ev.Outcome, ev.Reason = "error", "not applied: "+ae.Message
	s.recordBestEffort(ctx, r, ev)
}

// recordRefusal audits a refused action; a failure to record it is logged,
// since the action is refused either way.
func (s *Server) recordRefusal(ctx context.Context, r *http.Request, who auth.Identity, action string, req store.Request, reason string) {
	s.recordBestEffort(ctx, r, audit.Event{Action: action, Actor: userActor(who), Outcome: "denied", Reason: reason,
		Target: audit.Target{RequestID: req.ID, GrantID: req.GrantID, Service: req.Service, Env: req.Env}})
}

func (s *Server) recordBestEffort(ctx context.Context, r *http.Request, ev audit.Event) {
	if err := s.record(ctx, r, ev); err != nil {
		s.log.Warn("could not audit a refused action", "action", ev.Action, "err", err)
	}
}

func grantTarget(g store.Grant) audit.Target {
	return audit.Target{GrantID: g.ID, RequestID: g.RequestID, Service: g.Service, Env: g.Env}
}

// observeEvent hands a committed audit event to the audit alert rules.
func (s *Server) observeEvent(ev audit.Event) {
	if s.cfg.Alerts != nil {
		s.cfg.Alerts.ObserveEvent(ev)
	}
}

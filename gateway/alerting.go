package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/policy"
)

// AlertStore keeps alerts.
type AlertStore interface {
	Save(ctx context.Context, a alert.Alert) error
	Delete(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (alert.Alert, error)
	List(ctx context.Context, state string, limit int) ([]alert.Alert, error)
	Active(ctx context.Context) ([]alert.Alert, error)
}

// AlertReceiver takes alert states for delivery; Enqueue must not wait for
// the receiver itself.
type AlertReceiver interface {
	Enqueue(ctx context.Context, a alert.Alert) error
}

var (
	_ AlertStore    = (*alert.Store)(nil)
	_ AlertStore    = (*alert.RedisStore)(nil)
	_ AlertReceiver = (*alert.Alertmanager)(nil)
	_ alert.Sink    = (*Server)(nil)
)

// AlertChanged is the alert engine's sink: it keeps the alert, audits
// firing and resolving (counts and names, never a line) and queues the
// state for the receivers. It runs on the engine's goroutine, never on
// the ingest path.
func (s *Server) AlertChanged(ctx context.Context, ch alert.Change) {
	a := ch.Alert
	var sample map[string]any
	if a.Sample != "" && !ch.Dropped {
		sample = s.sampleDecision(ctx, &a)
	}
	if st := s.cfg.AlertStore; st != nil {
		var err error
		if ch.Dropped {
			err = st.Delete(ctx, a.ID)
		} else {
			err = st.Save(ctx, a)
		}
		if err != nil {
			s.log.Warn("keep alert", "alert_id", a.ID, "rule", a.Rule, "err", err)
		}
	}
	if ch.Dropped {
		return
	}
	if !ch.Resend && (a.State == alert.StateFiring || a.State == alert.StateResolved) {
		action := "alert.fired"
		if a.State == alert.StateResolved {
			action = "alert.resolved"
		}
		s.metrics.alerts.WithLabelValues(a.State).Inc()
		details := map[string]any{"alert_id": a.ID, "rule": a.Rule, "kind": a.Kind, "severity": a.Severity,
			"count": a.Count, "threshold": a.Threshold, "window": a.Window}
		if len(a.Group) > 0 {
			details["group"] = a.Group
		}
		if a.Absent {
			details["absent"] = true
		}
		if sample != nil && a.State == alert.StateFiring {
			details["sample"] = sample
		}
		if _, err := s.cfg.Audit.Append(ctx, audit.Event{Action: action, Actor: systemActor, Outcome: audit.OutcomeSuccess,
			Target: audit.Target{Service: a.Service, Env: a.Env}, Details: details}); err != nil {
			s.metrics.auditFailures.Inc()
			s.log.Warn("audit alert", "action", action, "alert_id", a.ID, "err", err)
		} else {
			s.metrics.auditEvents.WithLabelValues(action).Inc()
		}
		if s.cfg.Notifier != nil {
			if err := s.cfg.Notifier.Notify(ctx, action, map[string]any{"alert": alertView{Alert: a, Link: s.AlertLink(a)}}); err != nil {
				s.log.Warn("queue alert notification", "alert_id", a.ID, "err", err)
			}
		}
	}
	for _, rc := range s.cfg.AlertReceivers {
		if err := rc.Enqueue(ctx, a); err != nil {
			s.log.Warn("queue alert for a receiver", "alert_id", a.ID, "err", err)
		}
	}
}

// sampleDecision asks policy (alert_sample, with the alert's stream)
// whether the alert may keep its sample line, and clears the sample unless
// it may: a store, an API reader and a receiver then never see it. It is
// asked again at every change, so a policy tightened while an alert fires
// takes the sample off its next delivery. The decision (never the line)
// is what the alert.fired event records.
func (s *Server) sampleDecision(ctx context.Context, a *alert.Alert) map[string]any {
	d, err := s.cfg.Policy.Authorize(ctx, policy.ActionInput{Action: "alert_sample", Service: a.Service, Env: a.Env})
	allowed := err == nil && d.Allow
	if !allowed {
		a.Sample = ""
	}
	out := map[string]any{"allowed": allowed, "decision_id": d.ID}
	if !allowed {
		out["reasons"] = d.Reasons
	}
	return out
}

// ResolveStaleAlerts resolves the alerts a previous run left pending or
// firing: their counters did not survive the restart, so they are closed
// (and re-fire if the condition still holds).
func (s *Server) ResolveStaleAlerts(ctx context.Context) (int, error) {
	if s.cfg.AlertStore == nil {
		return 0, nil
	}
	active, err := s.cfg.AlertStore.Active(ctx)
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	for _, a := range active {
		if a.State == alert.StatePending {
			s.AlertChanged(ctx, alert.Change{Alert: a, From: a.State, Dropped: true})
			continue
		}
		a.State, a.EndedAt, a.UpdatedAt = alert.StateResolved, &now, now
		s.AlertChanged(ctx, alert.Change{Alert: a, From: alert.StateFiring})
	}
	return len(active), nil
}

// AlertLink is the generatorURL of an alert: loggate's request form,
// filled in with the alert's stream and the alert as the reason.
func (s *Server) AlertLink(a alert.Alert) string {
	q := url.Values{}
	q.Set("alert_id", a.ID)
	if a.Service != "" && a.Env != "" {
		q.Set("stream", a.Service+"/"+a.Env)
	}
	q.Set("reason", "alert "+a.Rule+" ("+a.ID+")")
	return s.cfg.PublicURL.String() + "/?" + q.Encode() + "#ask"
}

type alertView struct {
	alert.Alert
	Link string `json:"link"`
}

// handleListAlerts lists recent alerts for security and loggate-admins:
// ?state=pending|firing|resolved, ?limit (default 100, at most 1000).
func (s *Server) handleListAlerts(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireAlertReader(r, who); err != nil {
		return err
	}
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", alert.StatePending, alert.StateFiring, alert.StateResolved:
	default:
		return errBadRequest("state must be pending, firing or resolved")
	}
	limit, err := parseLimit(q.Get("limit"), 100, 1000)
	if err != nil {
		return err
	}
	items := []alertView{}
	if s.cfg.AlertStore != nil {
		as, err := s.cfg.AlertStore.List(r.Context(), state, limit)
		if err != nil {
			return errUnavailable("alert store unavailable", err)
		}
		for _, a := range as {
			items = append(items, alertView{Alert: a, Link: s.AlertLink(a)})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
	return nil
}

func (s *Server) handleGetAlert(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireAlertReader(r, who); err != nil {
		return err
	}
	a, err := s.alertByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, alertView{Alert: a, Link: s.AlertLink(a)})
	return nil
}

func (s *Server) alertByID(ctx context.Context, id string) (alert.Alert, error) {
	if s.cfg.AlertStore == nil {
		return alert.Alert{}, errNotFound("no such alert")
	}
	a, err := s.cfg.AlertStore.Get(ctx, id)
	if errors.Is(err, alert.ErrNotFound) {
		return alert.Alert{}, errNotFound("no such alert")
	}
	if err != nil {
		return alert.Alert{}, errUnavailable("alert store unavailable", err)
	}
	return a, nil
}

// requireAlertReader lets security (read_audit) and loggate-admins
// (manage_policies) read alerts; a refusal is audited.
func (s *Server) requireAlertReader(r *http.Request, who auth.Identity) error {
	if s.allowed(r.Context(), who, "read_audit") || s.allowed(r.Context(), who, "manage_policies") {
		return nil
	}
	s.recordBestEffort(r.Context(), r, audit.Event{Action: "alerts.read", Actor: userActor(who), Outcome: audit.OutcomeDenied,
		Reason: "alerts are for security and loggate-admins"})
	return errForbidden("alerts are for security and loggate-admins")
}

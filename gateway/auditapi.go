package gateway

import (
	"context"
	"errors"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
)

func (s *Server) requireSecurity(r *http.Request, who auth.Identity) error {
	if !s.allowed(r.Context(), who, "read_audit") {
		s.recordBestEffort(r.Context(), r, audit.Event{Action: "export.search", Actor: userActor(who), Outcome: "denied",
			Reason: "not a member of security"})
		return errForbidden("the audit trail is for security")
	}
	return nil
}

// checkedAuditQuery validates the trail query of r, auditing a refused one
// as action, and parses it.
func (s *Server) checkedAuditQuery(r *http.Request, who auth.Identity, action string) (audit.Query, error) {
	q := r.URL.Query()
	if err := checkAuditFilters(q); err != nil {
		var ae *apiError
		_ = errors.As(err, &ae)
		s.recordBestEffort(r.Context(), r, audit.Event{Action: action, Actor: userActor(who), Outcome: "failure",
			Reason: ae.Message, Details: map[string]any{"query": recordedQuery(r.URL.RawQuery)}})
		return audit.Query{}, err
	}
	return parseAuditQuery(r, s.now())
}

// parseAuditQuery reads the trail query of r; a duration in since or until
// counts back from now.
func parseAuditQuery(r *http.Request, now time.Time) (audit.Query, error) {
	q := r.URL.Query()
	aq := audit.Query{Actor: q.Get("actor"), Action: q.Get("action"), Outcome: q.Get("outcome"),
		GrantID: q.Get("grant"), RequestID: q.Get("request"), Service: q.Get("service"), Env: q.Get("env"),
		Cursor: q.Get("cursor")}
	if aq.GrantID == "" {
		aq.GrantID = q.Get("grant_id")
	}
	if aq.RequestID == "" {
		aq.RequestID = q.Get("request_id")
	}
	limit, err := limitParam(q)
	if err != nil {
		return aq, err
	}
	aq.Limit = limit
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &aq.Since}, {"until", &aq.Until}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			d, derr := time.ParseDuration(v)
			if derr != nil || d <= 0 {
				return aq, errBadRequest(p.name + " must be an RFC 3339 time or a duration before now (e.g. 24h)")
			}
			t = now.Add(-d)
		}
		*p.dst = clampUnixNano(t)
	}
	return aq, nil
}

// clampUnixNano keeps a query time within what Unix nanoseconds can hold
// (years 1678 to 2262), the form the trail compares times in: a bound
// beyond that would wrap around and match everything.
func clampUnixNano(t time.Time) time.Time {
	lo, hi := time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)
	switch {
	case t.Before(lo):
		return lo
	case t.After(hi):
		return hi
	}
	return t
}

func (s *Server) handleAuditSearch(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireSecurity(r, who); err != nil {
		return err
	}
	aq, err := s.checkedAuditQuery(r, who, "export.search")
	if err != nil {
		return err
	}
	page, err := s.cfg.Audit.Search(r.Context(), aq)
	if err != nil {
		if errors.Is(err, audit.ErrInvalid) && aq.Cursor != "" {
			return errBadRequest("malformed cursor") // the only query a backend rejects, worded as every list does
		}
		if errors.Is(err, audit.ErrInvalid) {
			return errBadRequest(err.Error())
		}
		return errUnavailable("audit trail unavailable", err)
	}
	if err := s.record(r.Context(), r, audit.Event{Action: "export.search", Actor: userActor(who), Outcome: "success",
		Details: map[string]any{"query": recordedQuery(r.URL.RawQuery), "results": len(page.Items)}}); err != nil {
		return err
	}
	items := page.Items
	if items == nil {
		items = []audit.Event{}
	}
	writeJSON(w, http.StatusOK, api.List[audit.Event]{Items: items, NextCursor: page.NextCursor})
	return nil
}

func (s *Server) handleAuditExport(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireSecurity(r, who); err != nil {
		return err
	}
	format, err := enumParam(r.URL.Query(), "format", "ndjson", "csv")
	if err != nil {
		return err
	}
	if format == "" {
		format = "ndjson"
	}
	ct := map[string]string{"ndjson": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}[format]
	aq, err := s.checkedAuditQuery(r, who, "export.download")
	if err != nil {
		return err
	}
	aq.Limit = 0
	if err := s.record(r.Context(), r, audit.Event{Action: "export.download", Actor: userActor(who), Outcome: "success",
		Details: map[string]any{"query": recordedQuery(r.URL.RawQuery), "format": format}}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", `attachment; filename="loggate-audit.`+format+`"`)
	if err := s.cfg.Audit.Export(r.Context(), w, format, aq); err != nil {
		s.log.Error("audit export failed midway", "err", err)
	}
	return nil
}

func (s *Server) handleAuditProof(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireSecurity(r, who); err != nil {
		return err
	}
	p, err := s.cfg.Audit.Proof(r.Context(), r.PathValue("id"))
	if errors.Is(err, audit.ErrNotFound) {
		return errNotFound("no such audit event")
	} else if err != nil {
		return errUnavailable("audit trail unavailable", err)
	}
	if err := s.record(r.Context(), r, audit.Event{Action: "export.proof", Actor: userActor(who), Outcome: "success",
		Details: map[string]any{"event_id": r.PathValue("id")}}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

// verifyCache remembers the last integrity check so the security page can
// poll without re-verifying the whole trail each time.
type verifyCache struct {
	mu     sync.Mutex
	at     time.Time
	report audit.Report
	err    error
}

// handleAuditVerify runs (at most every 30s) the offline verification of
// the trail and reports its result.
func (s *Server) handleAuditVerify(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireSecurity(r, who); err != nil {
		return err
	}
	fresh, err := parseBoolParam(r.URL.Query(), "fresh")
	if err != nil {
		return err
	}
	if s.cfg.VerifyAudit == nil {
		return errNotFound("verification is not available on this deployment")
	}
	c := &s.verify
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.at.IsZero() || s.now().Sub(c.at) > 30*time.Second || fresh {
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		c.report, c.err = s.cfg.VerifyAudit(ctx)
		cancel()
		c.at = s.now()
	}
	out := map[string]any{"verified": c.err == nil && c.report.OK(), "verified_at": c.at.UTC(), "report": c.report}
	if c.err != nil {
		out["verify_error"] = c.err.Error()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

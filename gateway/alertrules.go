package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
)

// requireRulesAdmin lets loggate-admins (manage_policies) read and change
// the alert rules; a refusal is audited.
func (s *Server) requireRulesAdmin(r *http.Request, who auth.Identity, action string) error {
	if s.allowed(r.Context(), who, "manage_policies") {
		return nil
	}
	s.recordBestEffort(r.Context(), r, audit.Event{Action: action, Actor: userActor(who),
		Outcome: audit.OutcomeDenied, Reason: "alert rules are managed by loggate-admins"})
	return errForbidden("alert rules are managed by loggate-admins")
}

func (s *Server) handleGetAlertRules(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireRulesAdmin(r, who, "alert_rules.read"); err != nil {
		return err
	}
	if s.cfg.Alerts == nil {
		return errNotFound("alerting is not configured (--alert-rules)")
	}
	set := s.cfg.Alerts.Rules()
	out := map[string]any{"digest": set.Digest, "rules": nonNil(set.Rules), "editable": s.cfg.AlertRulesFile != ""}
	if s.cfg.AlertRulesFile != "" {
		if b, err := os.ReadFile(s.cfg.AlertRulesFile); err == nil {
			out["source"] = string(b)
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handlePutAlertRules replaces the rules file with the body (YAML or JSON):
// validated first (400 listing every problem; the running rules stay),
// audited, saved, then put in force.
func (s *Server) handlePutAlertRules(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	if err := s.requireRulesAdmin(r, who, "alert_rules.changed"); err != nil {
		return err
	}
	// Read and validate first: a client learns what is wrong with its
	// file even where the rules cannot be saved.
	body, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge(fmt.Sprintf("request body over %d bytes", mbe.Limit))
	} else if err != nil {
		return errBadRequest("cannot read body: " + err.Error())
	}
	// The browser sends {"source": "<the file>"}; an object is never a
	// rules file (which is a list), so the two cannot be confused.
	if t := bytes.TrimSpace(body); len(t) > 0 && t[0] == '{' {
		var wrapped struct {
			Source string `json:"source"`
		}
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&wrapped); err != nil {
			return errBadRequest(`a JSON object body must be {"source": "<rules file>"}`)
		}
		body = []byte(wrapped.Source)
	}
	name := "alert-rules"
	if s.cfg.AlertRulesFile != "" {
		name = filepath.Base(s.cfg.AlertRulesFile)
	}
	set, err := alert.Parse(name, body)
	var pe *alert.ParseError
	if errors.As(err, &pe) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": pe.Error(), "code": "bad_request", "problems": pe.Problems})
		return nil
	} else if err != nil {
		return errBadRequest(err.Error())
	}
	if pe, err := s.unmatchedRules(r.Context(), set); err != nil {
		return err
	} else if pe != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": pe.Error(), "code": "bad_request", "problems": pe.Problems})
		return nil
	}
	if s.cfg.Alerts == nil || s.cfg.AlertRulesFile == "" {
		return errNotFound("alert rules are not editable here: start loggate with --alert-rules FILE")
	}
	if err := s.applyAlertRules(r.Context(), r, userActor(who), "api", set, body); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"digest": set.Digest, "rules": set.Names()})
	return nil
}

// applyAlertRules audits alert_rules.changed (fail closed), saves body to
// the rules file when it came through the API, and puts set in force.
func (s *Server) applyAlertRules(ctx context.Context, r *http.Request, actor audit.Actor, via string, set *alert.RuleSet, body []byte) error {
	old := s.cfg.Alerts.Rules()
	if old.Digest == set.Digest {
		return nil
	}
	added, removed := alert.Diff(old, set)
	changed := alert.Changed(old, set)
	ev := audit.Event{Action: "alert_rules.changed", Actor: actor, Outcome: audit.OutcomeSuccess,
		Details: map[string]any{"via": via, "digest": set.Digest, "previous_digest": old.Digest,
			"added": nonNil(added), "removed": nonNil(removed), "changed": nonNil(changed), "rules": len(set.Rules)}}
	var tmp string
	if via == "api" {
		f, err := os.CreateTemp(filepath.Dir(s.cfg.AlertRulesFile), ".alert-rules-*")
		if err != nil {
			return errUnavailable("cannot save the alert rules", err)
		}
		tmp = f.Name()
		_, err = f.Write(body)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return errUnavailable("cannot save the alert rules", err)
		}
	}
	if err := s.record(ctx, r, ev); err != nil {
		if tmp != "" {
			os.Remove(tmp)
		}
		return err
	}
	if tmp != "" {
		if err := os.Rename(tmp, s.cfg.AlertRulesFile); err != nil {
			os.Remove(tmp)
			return errUnavailable("cannot save the alert rules", err)
		}
	}
	s.cfg.Alerts.SetRules(set)
	s.log.Info("alert rules changed", "via", via, "digest", set.Digest, "rules", len(set.Rules),
		"added", added, "removed", removed, "changed", changed)
	return nil
}

// ReloadAlertRules re-reads the rules file (the hot reload). A bad file is
// audited as alert_rules.rejected and the running rules stay.
func (s *Server) ReloadAlertRules(ctx context.Context) error {
	if s.cfg.Alerts == nil || s.cfg.AlertRulesFile == "" {
		return nil
	}
	body, err := os.ReadFile(s.cfg.AlertRulesFile)
	if err != nil {
		return fmt.Errorf("read alert rules: %w", err)
	}
	set, err := alert.Parse(s.cfg.AlertRulesFile, body)
	if err == nil {
		var pe *alert.ParseError
		if pe, err = s.unmatchedRules(ctx, set); pe != nil {
			err = pe
		}
	}
	if err != nil {
		s.recordBestEffort(ctx, nil, audit.Event{Action: "alert_rules.rejected", Actor: systemActor, Outcome: audit.OutcomeFailure,
			Reason: truncate(err.Error(), 1000), Details: map[string]any{"via": "file"}})
		return err
	}
	return s.applyAlertRules(ctx, nil, systemActor, "file", set, body)
}

// unmatchedRules checks that every log rule's selector names a stream
// loggate knows (a source may write it, or it has lines). Before any
// source exists nothing is known, and nothing is checked.
func (s *Server) unmatchedRules(ctx context.Context, set *alert.RuleSet) (*alert.ParseError, error) {
	known, err := s.knownStreams(ctx)
	if err != nil {
		return nil, errUnavailable("state store unavailable", err)
	}
	if len(known) == 0 {
		return nil, nil
	}
	streams := make([]logs.Stream, len(known))
	for i, k := range known {
		streams[i] = logs.Stream{Service: k.Service, Env: k.Env}
	}
	return set.Unmatched(streams), nil
}

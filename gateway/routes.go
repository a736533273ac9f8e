package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
)

// routes is the one route table.
func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /healthz", s.handleHealthz)
	m.HandleFunc("GET /readyz", s.handleReadyz)
	m.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))

	m.HandleFunc("GET /login", s.cfg.Auth.HandleLogin)
	m.HandleFunc("GET /auth/callback", s.cfg.Auth.HandleCallback)
	m.HandleFunc("POST /logout", s.cfg.Auth.HandleLogout)
	m.HandleFunc("POST /auth/backchannel-logout", s.handleBackchannelLogout)
	m.HandleFunc("GET /api/v1/auth/config", s.handleAuthConfig)

	m.HandleFunc("GET /api/v1/me", s.api(s.handleMe))
	m.HandleFunc("GET /api/v1/streams", s.api(s.handleStreams))

	m.HandleFunc("POST /api/v1/requests", s.api(s.handleCreateRequest))
	m.HandleFunc("GET /api/v1/requests", s.api(s.handleListRequests))
	m.HandleFunc("GET /api/v1/requests/{id}", s.api(s.handleGetRequest))
	m.HandleFunc("POST /api/v1/requests/{id}/approve", s.api(s.handleApprove))
	m.HandleFunc("POST /api/v1/requests/{id}/deny", s.api(s.handleDeny))
	m.HandleFunc("POST /api/v1/requests/{id}/cancel", s.api(s.handleCancel))

	m.HandleFunc("GET /api/v1/grants", s.api(s.handleListGrants))
	m.HandleFunc("GET /api/v1/grants/{id}", s.api(s.handleGetGrant))
	m.HandleFunc("POST /api/v1/grants/{id}/revoke", s.api(s.handleRevoke))
	m.HandleFunc("POST /api/v1/grants/{id}/extend", s.api(s.handleExtend))
	m.HandleFunc("GET /api/v1/grants/{id}/tail", s.handleTail)
	m.HandleFunc("GET /api/v1/grants/{id}/timeline", s.api(s.handleTimeline))

	m.HandleFunc("GET /api/v1/reviews", s.api(s.handleListReviews))
	m.HandleFunc("POST /api/v1/reviews/{id}/close", s.api(s.handleCloseReview))

	m.HandleFunc("GET /api/v1/audit", s.api(s.handleAuditSearch))
	m.HandleFunc("GET /api/v1/audit/export", s.api(s.handleAuditExport))
	m.HandleFunc("GET /api/v1/audit/checkpoint", s.api(s.handleAuditCheckpoint))
	m.HandleFunc("GET /api/v1/audit/verify", s.api(s.handleAuditVerify))
	m.HandleFunc("GET /api/v1/audit/keys", s.handleAuditKeys)
	m.HandleFunc("GET /api/v1/audit/legal-hold", s.api(s.handleGetLegalHold))
	m.HandleFunc("POST /api/v1/audit/legal-hold", s.api(s.handleSetLegalHold))
	m.HandleFunc("POST /api/v1/audit/purge", s.api(s.handlePurge))
	m.HandleFunc("POST /api/v1/audit/rotate-key", s.api(s.handleRotateAuditKey))
	m.HandleFunc("GET /api/v1/audit/{id}/proof", s.api(s.handleAuditProof))

	m.HandleFunc("GET /api/v1/sources", s.api(s.handleListSources))
	m.HandleFunc("POST /api/v1/sources", s.api(s.handleCreateSource))
	m.HandleFunc("POST /api/v1/sources/{id}/revoke", s.api(s.handleRevokeSource))
	m.HandleFunc("GET /api/v1/policy", s.api(s.handlePolicyInfo))
	m.HandleFunc("GET /api/v1/alerts", s.api(s.handleListAlerts))
	m.HandleFunc("GET /api/v1/alerts/{id}", s.api(s.handleGetAlert))
	m.HandleFunc("GET /api/v1/alert-rules", s.api(s.handleGetAlertRules))
	m.HandleFunc("PUT /api/v1/alert-rules", s.api(s.handlePutAlertRules))
	m.HandleFunc("GET /api/v1/sessions", s.api(s.handleListSessions))
	m.HandleFunc("DELETE /api/v1/sessions/{id}", s.api(s.handleEndSession))

	m.HandleFunc("POST /api/v1/ingest", s.handleIngestJSON)
	m.HandleFunc("POST /v1/logs", s.handleIngestOTLP)
	m.HandleFunc("POST /loki/api/v1/push", s.handleIngestLoki)

	// What no pattern above serves: 405 (with Allow) when the path exists
	// under another method, else 404; JSON either way, never the UI's page.
	m.HandleFunc("/api/", s.handleNoRoute)
	m.HandleFunc("/v1/logs", s.handleNoRoute)
	m.HandleFunc("/loki/api/v1/push", s.handleNoRoute)
	for pattern, h := range s.cfg.Mounts {
		m.Handle(pattern, h)
	}
	if s.cfg.Pages != nil {
		m.Handle("/", s.cfg.Pages)
	} else {
		m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, map[string]string{"service": "loggate", "api": "/api/v1"})
		})
	}
}

// isNoRoutePattern says whether pattern is one of handleNoRoute's catch-alls.
func isNoRoutePattern(pattern string) bool {
	switch pattern {
	case "/api/", "/v1/logs", "/loki/api/v1/push":
		return true
	}
	return false
}

// handleNoRoute answers a request no API route serves. If the path is served
// under other methods it is 405 with an Allow header naming them.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if m == r.Method {
			continue
		}
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := s.mux.Handler(probe); pattern != "" && !isNoRoutePattern(pattern) {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		s.writeError(w, r, errNotFound("no such endpoint"))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.writeError(w, r, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
		Message: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))})
}

// apiHandler is an authenticated API handler; it returns an error instead of
// writing one so every error is mapped in one place.
type apiHandler func(w http.ResponseWriter, r *http.Request, who auth.Identity) error

// api authenticates the caller (401 without valid credentials), checks CSRF
// for cookie-authenticated unsafe methods, and maps the handler's error.
func (s *Server) api(h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, err := s.cfg.Auth.AuthenticateHTTP(w, r)
		if err != nil {
			s.writeError(w, r, authError(err))
			return
		}
		if who.Via == "session" && !safeMethod(r.Method) {
			if err := s.cfg.Auth.CheckCSRF(r); err != nil {
				s.writeError(w, r, errForbidden("missing or invalid CSRF token"))
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxBodyBytes)
		if err := h(w, r, who); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// authError maps an authenticator error to the client's answer; the body
// never says more than "invalid token" about a bad credential.
func authError(err error) error {
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return errUnauthorized("authentication required")
	case errors.Is(err, auth.ErrAudit):
		return errAudit(err)
	case errors.Is(err, auth.ErrProviderUnavailable):
		return errUnavailable("identity provider unavailable", err)
	}
	return &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Message: "invalid token", Cause: err}
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// decodeBody reads a JSON object strictly: unknown fields, trailing data and
// oversize bodies are client errors with a message naming the problem.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		var timeErr *time.ParseError
		switch {
		case errors.As(err, &tooBig):
			return errTooLarge(fmt.Sprintf("request body over %d bytes", tooBig.Limit))
		case errors.Is(err, io.EOF):
			return errBadRequest("request body is empty; expected a JSON object")
		case errors.As(err, &syn):
			return errBadRequest(fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, err))
		case errors.As(err, &timeErr):
			return errBadRequest(fmt.Sprintf("time %q is not an RFC 3339 time (e.g. \"2026-01-02T15:04:05Z\")", truncate(timeErr.Value, 40)))
		case errors.As(err, &typ) && typ.Field == "":
			return errBadRequest(fmt.Sprintf("request body must be a JSON object, not %s", typ.Value))
		case errors.As(err, &typ):
			return errBadRequest(fmt.Sprintf("field %q: expected %s, not %s", typ.Field, jsonKind(typ.Type), typ.Value))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return errBadRequest(strings.TrimPrefix(err.Error(), "json: ") + " in request body")
		default:
			return errBadRequest("malformed JSON: " + err.Error())
		}
	}
	if dec.More() {
		return errBadRequest("request body has data after the JSON object")
	}
	return nil
}

// jsonKind names what a Go type looks like in JSON, for error messages
// (never a Go type name such as "gateway.createRequestBody").
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct:
		if t.PkgPath() == "time" && t.Name() == "Time" {
			return "an RFC 3339 time string"
		}
		return "an object"
	case reflect.Map:
		return "an object"
	}
	return "another JSON type"
}

// decodeOptionalBody is decodeBody that accepts an empty body.
func decodeOptionalBody(r *http.Request, v any) error {
	if r.ContentLength == 0 && r.Header.Get("Transfer-Encoding") == "" {
		return nil
	}
	err := decodeBody(r, v)
	var ae *apiError
	if errors.As(err, &ae) && strings.HasPrefix(ae.Message, "request body is empty") {
		return nil
	}
	return err
}

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz reports each dependency; 503 when any is down.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	ok := true
	probe := func(name string, f func(context.Context) error) {
		if err := f(ctx); err != nil {
			checks[name] = err.Error()
			ok = false
		} else {
			checks[name] = "ok"
		}
	}
	probe("store", s.cfg.Store.Ping)
	probe("identity_provider", s.cfg.Auth.Ready)
	for name, f := range s.cfg.ReadyChecks {
		probe(name, f)
	}
	for name, note := range s.cfg.ReadyNotes {
		checks[name] = note
	}
	select {
	case <-s.shutdown:
		checks["shutdown"] = "draining"
		ok = false
	default:
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ok, "checks": checks})
}

func (s *Server) handleAuthConfig(w http.ResponseWriter, r *http.Request) {
	cc := s.cfg.Auth.ClientConfig()
	writeJSON(w, http.StatusOK, api.AuthConfig{Issuer: cc.Issuer, ClientID: cc.ClientID, Scopes: cc.Scopes,
		DeviceAuthorizationEndpoint: cc.DeviceAuthorizationEndpoint})
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, who auth.Identity) error {
	out := api.Me{ID: who.ID(), Issuer: who.Issuer, Subject: who.Subject, Email: who.Email, Name: who.Name,
		Username: who.Username, Display: who.Display(), Groups: nonNil(who.Groups), Via: who.Via}
	if who.Via == "session" {
		out.CSRFToken = s.cfg.Auth.CSRFToken(r)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

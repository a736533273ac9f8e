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
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
)

// Who may call a route (Route.Auth).
const (
	RouteAuthNone     = "none"     // anyone: health, metrics, public keys and client config
	RouteAuthUser     = "user"     // a signed-in person: bearer token, or session cookie (+ CSRF)
	RouteAuthSource   = "source"   // an ingest source token
	RouteAuthBrowser  = "browser"  // the browser sign-in flow itself (state, nonce, cookies)
	RouteAuthProvider = "provider" // a logout token signed by the identity provider
)

// Route is one row of the route table as others may read it.
type Route struct {
	Method string // GET, POST, DELETE
	Path   string // a ServeMux path pattern, e.g. /api/v1/grants/{id}
	Auth   string // RouteAuthNone, RouteAuthUser, ...
}

// route is a row of the table with its handler.
type route struct {
	pattern string // "METHOD /path"
	auth    string
	h       http.Handler
}

// routeTable is the one route table: every endpoint, who may call it, and
// its handler. Routes exposes it (tests walk it to check every endpoint's
// answers); routes registers it.
func (s *Server) routeTable() []route {
	const none, user, source, browser, provider = RouteAuthNone, RouteAuthUser, RouteAuthSource, RouteAuthBrowser, RouteAuthProvider
	f := func(h http.HandlerFunc) http.Handler { return h }
	return []route{
		{"GET /healthz", none, f(s.handleHealthz)},
		{"GET /readyz", none, f(s.handleReadyz)},
		{"GET /metrics", none, promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})},

		{"GET /login", browser, f(s.cfg.Auth.HandleLogin)},
		{"GET /auth/callback", browser, f(s.cfg.Auth.HandleCallback)},
		{"POST /logout", browser, f(s.cfg.Auth.HandleLogout)},
		{"POST /auth/backchannel-logout", provider, f(s.handleBackchannelLogout)},
		{"GET /api/v1/auth/config", none, f(s.handleAuthConfig)},

		{"GET /api/v1/me", user, s.api(s.handleMe)},
		{"GET /api/v1/streams", user, s.api(s.handleStreams)},

		{"POST /api/v1/requests", user, s.api(s.handleCreateRequest)},
		{"GET /api/v1/requests", user, s.api(s.handleListRequests)},
		{"GET /api/v1/requests/{id}", user, s.api(s.handleGetRequest)},
		{"POST /api/v1/requests/{id}/approve", user, s.api(s.handleApprove)},
		{"POST /api/v1/requests/{id}/deny", user, s.api(s.handleDeny)},
		{"POST /api/v1/requests/{id}/cancel", user, s.api(s.handleCancel)},

		{"GET /api/v1/grants", user, s.api(s.handleListGrants)},
		{"GET /api/v1/grants/{id}", user, s.api(s.handleGetGrant)},
		{"POST /api/v1/grants/{id}/revoke", user, s.api(s.handleRevoke)},
		{"POST /api/v1/grants/{id}/extend", user, s.api(s.handleExtend)},
		{"GET /api/v1/grants/{id}/tail", user, f(s.handleTail)},
		{"GET /api/v1/grants/{id}/timeline", user, s.api(s.handleTimeline)},
		{"GET /api/v1/views/{view_id}/replay", user, s.api(s.handleViewReplay)},
		{"POST /api/v1/grants/{id}/legal-hold", user, s.api(s.handleGrantLegalHold)},

		{"GET /api/v1/reviews", user, s.api(s.handleListReviews)},
		{"POST /api/v1/reviews/{id}/close", user, s.api(s.handleCloseReview)},

		{"GET /api/v1/audit", user, s.api(s.handleAuditSearch)},
		{"GET /api/v1/audit/export", user, s.api(s.handleAuditExport)},
		{"GET /api/v1/audit/checkpoint", none, s.publicLimited(f(s.handleAuditCheckpoint))},   // public: see auditwitness.go, publicrate.go
		{"GET /api/v1/audit/consistency", none, s.publicLimited(f(s.handleAuditConsistency))}, // public
		{"POST /api/v1/audit/witness-failures", user, s.api(s.handleWitnessFailure)},
		{"GET /api/v1/audit/verify", user, s.api(s.handleAuditVerify)},
		{"GET /api/v1/audit/keys", none, s.publicLimited(f(s.handleAuditKeys))},
		{"GET /api/v1/audit/legal-hold", user, s.api(s.handleGetLegalHold)},
		{"POST /api/v1/audit/legal-hold", user, s.api(s.handleSetLegalHold)},
		{"POST /api/v1/audit/purge", user, s.api(s.handlePurge)},
		{"POST /api/v1/audit/rotate-key", user, s.api(s.handleRotateAuditKey)},
		{"GET /api/v1/audit/{id}/proof", user, s.api(s.handleAuditProof)},

		{"GET /api/v1/sources", user, s.api(s.handleListSources)},
		{"POST /api/v1/sources", user, s.api(s.handleCreateSource)},
		{"POST /api/v1/sources/{id}/revoke", user, s.api(s.handleRevokeSource)},
		{"GET /api/v1/policy", user, s.api(s.handlePolicyInfo)},
		{"GET /api/v1/alerts", user, s.api(s.handleListAlerts)},
		{"GET /api/v1/alerts/{id}", user, s.api(s.handleGetAlert)},
		{"GET /api/v1/alert-rules", user, s.api(s.handleGetAlertRules)},
		{"PUT /api/v1/alert-rules", user, s.api(s.handlePutAlertRules)},
		{"GET /api/v1/sessions", user, s.api(s.handleListSessions)},
		{"DELETE /api/v1/sessions/{id}", user, s.api(s.handleEndSession)},

		{"POST /api/v1/ingest", source, f(s.handleIngestJSON)},
		{"POST /v1/logs", source, f(s.handleIngestOTLP)},
		{"POST /loki/api/v1/push", source, f(s.handleIngestLoki)},
		{"GET /api/v1/control/levels", source, f(s.handleControlLevels)},
	}
}

// Routes lists the route table: method, path pattern and who may call
// each endpoint, in the table's order.
func (s *Server) Routes() []Route {
	out := make([]Route, 0, len(s.table))
	for _, rt := range s.table {
		method, path, _ := strings.Cut(rt.pattern, " ")
		out = append(out, Route{Method: method, Path: path, Auth: rt.auth})
	}
	return out
}

// routeMux is a ServeMux with the method-less patterns (noRoute) that
// answer 405/404 for the paths of its routes.
type routeMux struct {
	*http.ServeMux
	noRoute map[string]bool
}

// routes registers the route table: on one mux, or with SeparateSources
// the source routes (and health) on a mux of their own.
func (s *Server) routes() {
	s.table = s.routeTable()
	if !s.cfg.SeparateSources {
		s.mux = s.newRouteMux(func(route) bool { return true }, true)
		return
	}
	s.mux = s.newRouteMux(func(rt route) bool { return rt.auth != RouteAuthSource }, true)
	s.sourceMux = s.newRouteMux(func(rt route) bool {
		return rt.auth == RouteAuthSource || rt.pattern == "GET /healthz" || rt.pattern == "GET /readyz"
	}, false)
}

// newRouteMux registers the rows serves picks, then what answers a path
// no row serves under the request's method (a path of another listener's
// route is 404 here). With ui, the mounts and pages (or the API's
// index) take what is left; without, everything else is 404 JSON.
func (s *Server) newRouteMux(serves func(route) bool, ui bool) *routeMux {
	m := &routeMux{ServeMux: http.NewServeMux(), noRoute: map[string]bool{"/api/": true}}
	noRoute := func(w http.ResponseWriter, r *http.Request) { s.handleNoRoute(m, w, r) }
	for _, rt := range s.table {
		if serves(rt) {
			m.Handle(rt.pattern, rt.h)
		}
		// The same path under any other method: 405 with Allow (JSON).
		_, path, _ := strings.Cut(rt.pattern, " ")
		if !m.noRoute[path] {
			m.noRoute[path] = true
			m.HandleFunc(path, noRoute)
		}
	}
	// What no pattern serves under /api/: 404 JSON, never the UI's page.
	m.HandleFunc("/api/", noRoute)
	if !ui {
		m.noRoute["/"] = true
		m.HandleFunc("/", noRoute)
		return m
	}
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
	return m
}

// handleNoRoute answers a request no route of m serves. If the path is
// served under other methods it is 405 with an Allow header naming them.
func (s *Server) handleNoRoute(m *routeMux, w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, meth := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		if meth == r.Method {
			continue
		}
		probe := &http.Request{Method: meth, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, pattern := m.Handler(probe); pattern != "" && !m.noRoute[pattern] {
			allow = append(allow, meth)
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
// for cookie-authenticated unsafe methods, refuses a declared-oversize body
// (413), maps the handler's error, and makes sure a 403 is audited.
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
		if r.ContentLength > s.limits.MaxBodyBytes {
			// Declared too big: refused before any handler, whether or not
			// it reads a body (one sent chunked meets MaxBytesReader).
			s.writeError(w, r, errTooLarge(fmt.Sprintf("request body over %d bytes", s.limits.MaxBodyBytes)))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.limits.MaxBodyBytes)
		mark := &refusalMark{}
		r = r.WithContext(context.WithValue(r.Context(), keyRefusalMark, mark))
		if err := h(w, r, who); err != nil {
			s.auditForbidden(r, who, mark, err)
			s.writeError(w, r, err)
		}
	}
}

// refusalMark notes that a handler recorded a denied event for its
// request, so that api does not record a second one.
type refusalMark struct{ recorded atomic.Bool }

// auditForbidden makes every 403 of an API handler leave a trace: a handler
// that did not record its own refusal (an action-specific denied event) gets
// access.denied, naming the route and the refusal.
func (s *Server) auditForbidden(r *http.Request, who auth.Identity, mark *refusalMark, err error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden || mark.recorded.Load() {
		return
	}
	s.recordBestEffort(r.Context(), r, audit.Event{Action: "access.denied", Actor: userActor(who), Outcome: audit.OutcomeDenied,
		Reason: ae.Message, Details: map[string]any{"method": r.Method, "route": r.Pattern, "path": truncate(r.URL.Path, 256)}})
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
	if tracked, err := s.controlReady(); tracked {
		probe("control_stream", func(context.Context) error { return err })
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
	out := map[string]any{"ready": ok, "checks": checks}
	if s.cfg.Spool != nil {
		// Spooled events do not make the replica unready (the trail's own
		// check does); the depth says how far behind the trail it is.
		out["audit_spool"] = s.cfg.Spool.Stats()
	}
	writeJSON(w, status, out)
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

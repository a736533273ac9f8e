package gateway

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/store"
)

// apiError is an error with the HTTP status and the short message a client
// sees. The cause is logged, never sent.
type apiError struct {
	Status  int
	Code    string
	Message string
	Cause   error
}

func (e *apiError) Error() string {
	if e.Cause != nil {
		return e.Message + ": " + e.Cause.Error()
	}
	return e.Message
}

func (e *apiError) Unwrap() error { return e.Cause }

func errBadRequest(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: api.CodeBadRequest, Message: msg}
}
func errUnauthorized(msg string) *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: msg}
}
func errForbidden(msg string) *apiError {
	return &apiError{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: msg}
}
func errNotFound(msg string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: api.CodeNotFound, Message: msg}
}
func errConflict(msg string) *apiError {
	return &apiError{Status: http.StatusConflict, Code: api.CodeConflict, Message: msg}
}
func errTooLarge(msg string) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge, Message: msg}
}
func errUnavailable(msg string, cause error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: api.CodeUnavailable, Message: msg, Cause: cause}
}

// errAudit is the fail-closed answer when the audit trail cannot record an
// action: the action does not happen.
func errAudit(cause error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: api.CodeAuditUnavailable,
		Message: "audit trail unavailable; action not taken", Cause: cause}
}

// writeError maps err to a status and an api.Error body.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		switch {
		case errors.Is(err, store.ErrNotFound):
			ae = errNotFound("not found")
		case errors.Is(err, store.ErrUnavailable):
			ae = errUnavailable("state store unavailable", err)
		case errors.Is(err, store.ErrBadCursor):
			ae = errBadRequest("malformed cursor")
		default:
			ae = &apiError{Status: http.StatusInternalServerError, Code: api.CodeInternal, Message: "internal error", Cause: err}
		}
	}
	level := slog.LevelDebug
	if ae.Status >= 500 {
		level = slog.LevelError
	}
	s.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path,
		"status", ae.Status, "err", ae.Error(), "request_id", requestID(r.Context()))
	if ae.Status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	writeJSON(w, ae.Status, api.Error{Message: ae.Message, Code: ae.Code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

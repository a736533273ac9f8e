package api

// Error is the body of every error answer: a short message for a person and
// a code for a program. The cause stays in the server's log.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

// Error codes, each with its HTTP status.
const (
	CodeBadRequest       = "bad_request"       // 400
	CodeUnauthorized     = "unauthorized"      // 401
	CodeForbidden        = "forbidden"         // 403
	CodeNotFound         = "not_found"         // 404
	CodeConflict         = "conflict"          // 409
	CodeTooLarge         = "too_large"         // 413
	CodeRateLimited      = "rate_limited"      // 429, with Retry-After
	CodeInternal         = "internal"          // 500
	CodeUnavailable      = "unavailable"       // 503, with Retry-After
	CodeAuditUnavailable = "audit_unavailable" // 503: the action was not taken
)

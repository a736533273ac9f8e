package ingest

import (
	"errors"
	"fmt"
	"net/http"
)

var (
	// ErrTooLarge means a body (after decompression) or a snappy block is
	// over the limit: 413.
	ErrTooLarge = errors.New("ingest: body too large")
	// ErrUnsupportedMediaType means an unknown Content-Type or
	// Content-Encoding: 415.
	ErrUnsupportedMediaType = errors.New("ingest: unsupported media type")
)

// LineError rejects an NDJSON body (or JSON array) because of one line (or
// array element).
type LineError struct {
	Line int // 1-based line, or element index of a JSON array
	Msg  string
	// TooLarge marks a line over the line-size limit: it unwraps to
	// ErrTooLarge, so the client is told 413 rather than 400.
	TooLarge bool
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Unwrap makes an over-long line an ErrTooLarge.
func (e *LineError) Unwrap() error {
	if e.TooLarge {
		return ErrTooLarge
	}
	return nil
}

// StreamError rejects a record that names no stream: no service or no
// environment.
type StreamError struct {
	// Record locates the record in the body, e.g. "resourceLogs[0]" or
	// "streams[2]"; empty for a stream given by the URL.
	Record  string
	Service string
	Env     string
}

func (e *StreamError) Error() string {
	var missing string
	switch {
	case e.Service == "" && e.Env == "":
		missing = "service and environment"
	case e.Service == "":
		missing = "service"
	default:
		missing = "environment"
	}
	if e.Record == "" {
		return "ingest: stream has no " + missing
	}
	return fmt.Sprintf("ingest: %s: record has no %s", e.Record, missing)
}

// formatError is any other malformed body.
type formatError struct {
	format string
	msg    string
	err    error
}

func (e *formatError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("ingest: %s: %s: %v", e.format, e.msg, e.err)
	}
	return fmt.Sprintf("ingest: %s: %s", e.format, e.msg)
}

func (e *formatError) Unwrap() error { return e.err }

func badBody(format, msg string, err error) error {
	return &formatError{format: format, msg: msg, err: err}
}

// IsClientError reports whether err is a malformed or unsupported body, to
// be answered with a 4xx status and not retried. ErrTooLarge is not a client
// error in this sense (it is 413, see HTTPStatus); nor is a failure to read
// the request (a broken connection).
func IsClientError(err error) bool {
	if err == nil || errors.Is(err, ErrTooLarge) {
		return false
	}
	var le *LineError
	var se *StreamError
	var fe *formatError
	return errors.As(err, &le) || errors.As(err, &se) || errors.As(err, &fe) || errors.Is(err, ErrUnsupportedMediaType)
}

// HTTPStatus maps a decode error to its response status: 413 for
// ErrTooLarge, 415 for ErrUnsupportedMediaType, 400 for other client errors,
// 500 otherwise; 200 for nil.
func HTTPStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType
	case IsClientError(err):
		return http.StatusBadRequest
	default:
		return http.StatusInternalServerError
	}
}

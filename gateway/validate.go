package gateway

import (
	"fmt"
	"net/url"
	"strings"
)

// checkStreamName answers a missing or malformed service or environment
// name with a message saying which field, that the value is invalid, and
// what is allowed.
func checkStreamName(field, v string) error {
	if v == "" {
		return errBadRequest(fmt.Sprintf("%q is required", field))
	}
	if !nameRE.MatchString(v) {
		return errBadRequest(fmt.Sprintf("%s %q is not a valid name: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters",
			field, truncate(v, 40)))
	}
	return nil
}

// auditFilterMax is the longest value each audit search filter may have:
// longer values can match nothing, and would make the search's own audit
// event too big to record.
var auditFilterMax = map[string]int{
	"actor": 512, "action": 128, "outcome": 16, "grant": 64, "grant_id": 64, "request": 64, "request_id": 64,
	"service": 63, "env": 63, "since": 64, "until": 64, "limit": 16, "cursor": 256, "format": 16,
}

// auditOutcomes are the values of the outcome filter.
var auditOutcomes = []string{"success", "denied", "failure", "error", "interrupted"}

// checkAuditFilters validates the audit search filters before any search:
// each value within its limit, outcome one of the outcomes.
func checkAuditFilters(q url.Values) error {
	for name, max := range auditFilterMax {
		if v := q.Get(name); len(v) > max {
			return errBadRequest(fmt.Sprintf("query parameter %s is %d bytes; at most %d", name, len(v), max))
		}
	}
	_, err := enumParam(q, "outcome", auditOutcomes...)
	return err
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// maxRecordedQuery bounds the query string an audit event keeps: the event
// records what was asked, cut, never a value big enough to refuse the event.
const maxRecordedQuery = 2048

func recordedQuery(raw string) string {
	if len(raw) <= maxRecordedQuery {
		return raw
	}
	return truncate(raw, maxRecordedQuery) + "…[cut]"
}

// The shared checks of list and query parameters: every list answers a
// bad value the same way, a 400 naming the parameter and what is allowed.

// enumParam reads an optional parameter that must be one of allowed.
func enumParam(q url.Values, name string, allowed ...string) (string, error) {
	v := q.Get(name)
	if v == "" || contains(allowed, v) {
		return v, nil
	}
	return "", errBadRequest(fmt.Sprintf("%s %q is not one of %s", name, truncate(v, 40), strings.Join(allowed, ", ")))
}

// parseBoolParam reads an optional true/false parameter (absent: false).
func parseBoolParam(q url.Values, name string) (bool, error) {
	v, err := enumParam(q, name, "true", "false")
	return v == "true", err
}

// maxListLimit is the largest page any list returns; defaultListLimit the
// page size without limit=.
const (
	maxListLimit     = 1000
	defaultListLimit = 100
)

// limitParam reads limit: an integer from 1 to 1000, default 100.
func limitParam(q url.Values) (int, error) {
	return parseLimit(q.Get("limit"), defaultListLimit, maxListLimit)
}

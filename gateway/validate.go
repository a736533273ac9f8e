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
	if o := q.Get("outcome"); o != "" && !contains(auditOutcomes, o) {
		return errBadRequest(fmt.Sprintf("outcome %q is not one of %s", o, strings.Join(auditOutcomes, ", ")))
	}
	return nil
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

package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// nameRule says what a service or environment name may be.
const nameRule = "lower-case letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters"

// checkStreamName answers a missing or malformed service or environment
// name with a message saying which field, that the value is invalid, and
// what is allowed.
func checkStreamName(field, v string) error {
	if v == "" {
		return errBadRequest(fmt.Sprintf("%q is required", field))
	}
	if !nameRE.MatchString(v) {
		return errBadRequest(fmt.Sprintf("%s %q is not a valid name: %s", field, truncate(v, 40), nameRule))
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

// checkSourceStream checks one stream a source is bound to: a name, or *
// for any.
func checkSourceStream(i int, field, v string) error {
	if v == "*" {
		return nil
	}
	if err := checkStreamName(fmt.Sprintf("streams[%d].%s", i, field), v); err != nil {
		var ae *apiError
		_ = errors.As(err, &ae)
		return errBadRequest(ae.Message + " (or * for any)")
	}
	return nil
}

// checkEntryStream checks the stream an ingested record names (OTLP and
// Loki records name their own): a name no request could ask for would
// keep lines nobody can read.
func checkEntryStream(i int, service, env string) error {
	for _, f := range [][2]string{{"service", service}, {"env", env}} {
		if !nameRE.MatchString(f[1]) {
			return errBadRequest(fmt.Sprintf("entry %d: %s %q is not a valid name: %s", i+1, f[0], truncate(f[1], 40), nameRule))
		}
	}
	return nil
}

// maxSourceName is the longest source name, in characters.
const maxSourceName = 100

// checkSourceName checks a source's name: free text a person reads in the
// trail and lists, so no control characters, and at most 100 characters.
func checkSourceName(v string) error {
	switch n := utf8.RuneCountInString(v); {
	case v == "":
		return errBadRequest(`"name" is required (at most 100 characters)`)
	case n > maxSourceName:
		return errBadRequest(fmt.Sprintf(`"name" is %d characters; at most %d`, n, maxSourceName))
	case !utf8.ValidString(v):
		return errBadRequest(`"name" is not valid UTF-8`)
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c <= 0x9f || c >= 0x202a && c <= 0x202e || c >= 0x2066 && c <= 0x2069 {
			return errBadRequest(fmt.Sprintf(`"name" %q contains control characters; use letters, digits, spaces and punctuation`, truncate(v, 40)))
		}
	}
	return nil
}

// checkStreamParam is checkStreamName for a query parameter.
func checkStreamParam(name, v string) error {
	if v == "" {
		return errBadRequest(fmt.Sprintf("query parameter %s is required: %s", name, nameRule))
	}
	return checkStreamName("query parameter "+name, v)
}

package gateway

import (
	"errors"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/store"
)

// queryRequest is a GET with raw as its query, however malformed.
func queryRequest(raw string) *http.Request {
	return &http.Request{Method: "GET", URL: &url.URL{Path: "/api/v1/audit", RawQuery: raw}, Header: http.Header{}}
}

// checkClientError insists err is a 400 whose message is short (a huge
// value is cut, never echoed whole) and names param when one is given.
func checkClientError(t *testing.T, err error, params ...string) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Message == "" {
		t.Fatalf("error %v is not a 400 with a message", err)
	}
	if len(ae.Message) > 400 {
		t.Fatalf("message of %d bytes echoes the input: %.80q…", len(ae.Message), ae.Message)
	}
	if len(params) > 0 && !slices.ContainsFunc(params, func(p string) bool { return strings.Contains(ae.Message, p) }) {
		t.Fatalf("message %q names none of %v", ae.Message, params)
	}
}

// FuzzAuditQuery: the audit search and export query never panics; it is
// either a 400 naming a parameter or a query within every limit.
func FuzzAuditQuery(f *testing.F) {
	for _, s := range []string{"", "actor=alice&action=grant.*&outcome=denied", "since=24h&until=2026-01-02T15:04:05Z",
		"since=-5m", "until=9999999h", "limit=1000", "limit=0", "limit=1e3", "outcome=bogus", "grant=grt_1&grant_id=grt_2",
		"service=" + strings.Repeat("a", 100), "%zz", "since=0001-01-01T00:00:00Z", "until=9999-12-31T23:59:59Z"} {
		f.Add(s)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	lo, hi := time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)
	f.Fuzz(func(t *testing.T, raw string) {
		r := queryRequest(raw)
		if err := checkAuditFilters(r.URL.Query()); err != nil {
			checkClientError(t, err, "query parameter", "outcome")
			return
		}
		q, err := parseAuditQuery(r, now)
		if err != nil {
			checkClientError(t, err, "limit", "since", "until")
			return
		}
		if q.Limit < 1 || q.Limit > maxListLimit {
			t.Fatalf("limit %d outside 1..%d", q.Limit, maxListLimit)
		}
		if q.Outcome != "" && !slices.Contains(auditOutcomes, q.Outcome) {
			t.Fatalf("outcome %q accepted", q.Outcome)
		}
		for _, tm := range []time.Time{q.Since, q.Until} {
			if !tm.IsZero() && (tm.Before(lo) || tm.After(hi)) {
				t.Fatalf("time %v outside what Unix nanoseconds hold", tm)
			}
		}
		for name, max := range auditFilterMax {
			if v := r.URL.Query().Get(name); len(v) > max {
				t.Fatalf("%s of %d bytes accepted (max %d)", name, len(v), max)
			}
		}
	})
}

// FuzzListParams: the shared list checks accept exactly the allowed values
// and answer anything else with a 400 naming the parameter.
func FuzzListParams(f *testing.F) {
	for _, s := range []string{"", "state=pending", "state=bogus&limit=5", "all=true", "all=TRUE", "limit=-1",
		"limit=1000", "limit=1001", "limit=00001", "limit=+5", "state=pending&state=bogus", "%"} {
		f.Add(s)
	}
	states := []string{store.StatePending, store.StateApproved, store.StateDenied, store.StateCancelled, store.StateLapsed}
	f.Fuzz(func(t *testing.T, raw string) {
		q := queryRequest(raw).URL.Query()
		if v, err := enumParam(q, "state", states...); err != nil {
			checkClientError(t, err, "state")
		} else if v != "" && !slices.Contains(states, v) {
			t.Fatalf("state %q accepted", v)
		}
		if b, err := parseBoolParam(q, "all"); err != nil {
			checkClientError(t, err, "all")
		} else if b != (q.Get("all") == "true") {
			t.Fatalf("all=%q read as %v", q.Get("all"), b)
		}
		if n, err := limitParam(q); err != nil {
			checkClientError(t, err, "limit")
		} else if n < 1 || n > maxListLimit || (q.Get("limit") == "" && n != defaultListLimit) {
			t.Fatalf("limit=%q read as %d", q.Get("limit"), n)
		}
	})
}

// FuzzTailQuery: a tail's query never panics; accepted backfill stays
// within the grant's lookback and the line cap.
func FuzzTailQuery(f *testing.F) {
	for _, s := range []string{"", "level=warn&grep=err.*&exclude=health", "lines=100&since=10m", "after=42",
		"since=2026-01-01T00:00:00Z", "grep=(", "attr.pod=x&attr.=y", "lines=10001", "level=loud"} {
		f.Add(s)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	g := store.Grant{ID: "grt_1", MaxLookback: 15 * time.Minute}
	s := &Server{}
	f.Fuzz(func(t *testing.T, raw string) {
		tr, err := s.parseTail(queryRequest(raw).URL.Query(), g, now)
		if err != nil {
			checkClientError(t, err)
			return
		}
		if tr.opts.Lines < 0 || tr.opts.Lines > 10000 || tr.opts.After < 0 {
			t.Fatalf("lines %d after %d accepted", tr.opts.Lines, tr.opts.After)
		}
		if !tr.opts.Since.IsZero() && tr.opts.Since.Before(now.Add(-g.MaxLookback)) {
			t.Fatalf("since %v before the grant's lookback", tr.opts.Since)
		}
	})
}

package gateway

import (
	"net/http"
	"time"
)

// controlStale is the local control event that ends a tail when this
// replica cannot confirm it has seen every control message (revocations,
// session ends, policy changes) within its staleness bound.
const controlStale = "stale"

// knowledge is what the server knows of its own freshness: nil while the
// control stream is confirmed within the bound. Written by
// SetControlStale, read by handleTail.
type knowledge struct {
	tracked bool // SetControlStale has been called: /readyz reports it
	stale   error
	since   time.Time
}

// SetControlStale tells the server whether it can confirm it has seen every
// control message within its staleness bound (err nil) or not (err says
// why). On becoming stale it ends every open tail with 4006, and until it is
// fresh again it refuses new tails with 503: a replica that cannot hear a
// revocation must not stream under the revoked grant. The caller (the
// replica wiring, which watches the control subscription) owns the timing.
func (s *Server) SetControlStale(err error) {
	s.knowMu.Lock()
	was := s.know.stale
	if s.know.tracked && (was == nil) == (err == nil) {
		if err != nil {
			s.know.stale = err
		}
		s.knowMu.Unlock()
		return
	}
	first := !s.know.tracked
	s.know = knowledge{tracked: true, stale: err, since: s.now()}
	s.knowMu.Unlock()
	if first && err == nil {
		return
	}
	if err == nil {
		s.log.Info("control stream confirmed again; admitting tails")
		return
	}
	tails := s.tails.all()
	s.log.Error("cannot confirm control messages; ending live tails until caught up", "err", err, "tails", len(tails))
	for _, t := range tails {
		t.control(ControlEvent{Kind: controlStale, Reason: err.Error()})
	}
}

// controlReady is /readyz's control_stream check: tracked says whether the
// check applies (only replicas that watch the control stream have it).
func (s *Server) controlReady() (tracked bool, err error) {
	s.knowMu.Lock()
	defer s.knowMu.Unlock()
	return s.know.tracked, s.know.stale
}

// controlStaleErr returns nil while this replica is known to be up to date
// with the control stream.
func (s *Server) controlStaleErr() error {
	s.knowMu.Lock()
	defer s.knowMu.Unlock()
	return s.know.stale
}

// errStale is the answer to a tail on a replica that is not up to date.
func errStale(cause error) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: "replica_stale",
		Message: "this replica cannot confirm it has seen every revocation and policy change; retry shortly or use another replica",
		Cause:   cause}
}

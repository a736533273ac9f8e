package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/loggate/loggate/gateway/audit"
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
	// Of the current stale episode: the tails it ended, and whether
	// control messages were lost in it (a control.resync was recorded).
	ended int
	lost  bool
}

// controlLost reports whether err says control messages were lost to this
// replica (trimmed from the stream before it read them), not merely
// unconfirmed: err wraps an error with a ControlLost method that returns
// true, such as cluster.ErrTrimmed (this package does not import cluster).
func controlLost(err error) bool {
	var l interface{ ControlLost() bool }
	return errors.As(err, &l) && l.ControlLost()
}

// SetControlStale tells the server whether it can confirm it has seen every
// control message within its staleness bound (err nil) or not (err says
// why). On becoming stale it ends every open tail with 4006, and until it is
// fresh again it refuses new tails with 503: a replica that cannot hear a
// revocation must not stream under the revoked grant. The caller (the
// replica wiring, which watches the control subscription) owns the timing.
//
// When err says control messages were lost (see controlLost), and again
// when the replica is fresh after that, it records control.resync (after
// ending the tails): when the replica became stale, how many tails it
// ended, its replica id.
func (s *Server) SetControlStale(err error) {
	s.knowMu.Lock()
	was := s.know.stale
	if s.know.tracked && (was == nil) == (err == nil) {
		var ev *audit.Event
		if err != nil {
			s.know.stale = err
			if controlLost(err) && !s.know.lost {
				// Already stale (a cut), now known to have lost messages.
				s.know.lost = true
				ev = s.resyncEvent(err, s.know.since, s.know.ended)
			}
		}
		s.knowMu.Unlock()
		if ev != nil {
			s.recordResync(*ev)
		}
		return
	}
	first := !s.know.tracked
	prev, since := s.know, s.now()
	s.know = knowledge{tracked: true, stale: err, since: since}
	if err != nil {
		s.know.lost = controlLost(err)
	}
	s.knowMu.Unlock()
	if first && err == nil {
		return
	}
	if err == nil {
		s.log.Info("control stream confirmed again; admitting tails")
		if prev.lost {
			ev := s.resyncEvent(nil, prev.since, prev.ended)
			s.recordResync(*ev)
		}
		return
	}
	tails := s.tails.all()
	s.log.Error("cannot confirm control messages; ending live tails until caught up", "err", err, "tails", len(tails))
	for _, t := range tails {
		t.control(ControlEvent{Kind: controlStale, Reason: err.Error()})
	}
	s.knowMu.Lock()
	if s.know.stale != nil && s.know.since.Equal(since) { // still this episode
		s.know.ended = len(tails)
	}
	s.knowMu.Unlock()
	if controlLost(err) {
		s.recordResync(*s.resyncEvent(err, since, len(tails)))
	}
}

// resyncEvent is the control.resync event of a stale episode that began at
// since and ended tails tails: err is why, while it lasts; nil once the
// replica is fresh again.
func (s *Server) resyncEvent(err error, since time.Time, tails int) *audit.Event {
	details := map[string]any{"replica": s.cfg.ReplicaID, "stale_since": since.UTC().Format(time.RFC3339Nano),
		"tails_ended": tails, "cause": "trimmed"}
	ev := audit.Event{Action: "control.resync", Actor: systemActor, Details: details}
	if err != nil {
		details["phase"] = "stale"
		ev.Outcome, ev.Reason = audit.OutcomeError, err.Error()
	} else {
		details["phase"] = "recovered"
		details["stale_ms"] = s.now().Sub(since).Milliseconds()
		ev.Outcome, ev.Reason = audit.OutcomeSuccess, "control stream confirmed again"
	}
	return &ev
}

// recordResync writes a control.resync event. What it records has happened
// already, so it cannot be refused: with a spool it waits there while the
// trail is unavailable.
func (s *Server) recordResync(ev audit.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.recordClosing(ctx, nil, ev); err != nil {
		s.log.Error("could not audit control.resync", "phase", ev.Details["phase"], "err", err)
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

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/store"
)

// WebSocket close codes of the tail protocol (package api).
const (
	CloseExpired     = api.CloseExpired
	CloseRevoked     = api.CloseRevoked
	CloseShutdown    = api.CloseShutdown
	CloseLimit       = api.CloseLimit
	CloseSlow        = api.CloseSlow
	CloseUnavailable = api.CloseUnavailable
)

// tailEnd says why a tail ended: the reason word of the end message, the
// close code and its text.
type tailEnd struct {
	reason string
	code   int
	text   string
}

var (
	endExpired     = tailEnd{api.EndExpired, CloseExpired, "grant expired"}
	endRevoked     = tailEnd{api.EndRevoked, CloseRevoked, "grant revoked"}
	endShutdown    = tailEnd{api.EndShutdown, CloseShutdown, "server shutting down"}
	endLimit       = tailEnd{api.EndLimit, CloseLimit, "tail limit reached"}
	endSlow        = tailEnd{api.EndSlow, CloseSlow, "viewer too slow"}
	endUnavailable = tailEnd{api.EndUnavailable, CloseUnavailable, "log backend unavailable"}
	endStale       = tailEnd{api.EndUnavailable, CloseUnavailable, "replica cannot confirm control messages"}
	endClient      = tailEnd{"client_closed", websocket.CloseNormalClosure, ""}
)

// tailSession is one live WebSocket tail. The serving goroutine owns the
// connection; other goroutines reach it only through control().
type tailSession struct {
	grantID, user, stream string
	session               string // handle of the browser session that opened it; "" for bearer tokens

	mu      sync.Mutex
	pending []ControlEvent // guarded by mu
	wake    chan struct{}  // capacity 1: "pending has something"
}

func (t *tailSession) control(ev ControlEvent) {
	t.mu.Lock()
	t.pending = append(t.pending, ev)
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

func (t *tailSession) drain() []ControlEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	evs := t.pending
	t.pending = nil
	return evs
}

const tailWriteTimeout = 10 * time.Second

// deadline is a socket deadline d from now. The network compares deadlines
// with the wall clock, so socket deadlines are the one use of time.Now in
// the tail; what the product decides by (expiry, durations, progress) reads
// the injected s.now, so a test clock moved forward never stretches or
// shrinks a network timeout.
func deadline(d time.Duration) time.Time { return time.Now().Add(d) }

func (s *Server) writeTail(conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.writeTailRaw(conn, b)
}

func (s *Server) writeTailRaw(conn *websocket.Conn, b []byte) error {
	_ = conn.SetWriteDeadline(deadline(tailWriteTimeout))
	return conn.WriteMessage(websocket.TextMessage, b)
}

// sendEnd writes the end message and the close frame; it never reads.
func (s *Server) sendEnd(conn *websocket.Conn, e tailEnd, msg string) {
	if e.code != websocket.CloseNormalClosure {
		_ = s.writeTail(conn, api.TailFrame{Type: api.FrameEnd, Reason: e.reason, Message: msg})
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(e.code, e.text), deadline(time.Second))
}

// endTail sends the end and then waits briefly for the client's close so
// the frame is not lost to a reset. Only for connections with no reader
// goroutine; serveTail lets its reader see the close instead.
func (s *Server) endTail(conn *websocket.Conn, e tailEnd, msg string) {
	s.sendEnd(conn, e, msg)
	_ = conn.SetReadDeadline(deadline(time.Second))
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// serveTail is the tail's write loop. It owns conn's writes; a reader
// goroutine passes client messages in and exits when conn closes.
func (s *Server) serveTail(conn *websocket.Conn, t *tailSession, v *logs.Viewer, g store.Grant, who auth.Identity, tr tailRequest, viewID string, counts *audit.ViewCountsFile) tailEnd {
	sub := api.TailFrame{Type: api.FrameSubscribed, ViewID: viewID, GrantID: g.ID, Service: g.Service, Env: g.Env,
		ExpiresAt: g.ExpiresAt.UTC(), MaxLookback: durString(g.MaxLookback),
		Filter:   &api.TailFilter{Level: tr.filter.MinLevel, Grep: tr.filter.Grep, Exclude: tr.filter.Exclude, Attrs: tr.filter.Attrs},
		Backfill: &api.TailBackfill{Lines: tr.opts.Lines, Since: timeOrEmpty(tr.opts.Since), After: tr.opts.After}}
	if err := s.writeTail(conn, sub); err != nil {
		return endClient
	}
	if tr.notice != "" {
		_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: "backfill", Message: tr.notice})
	}
	conn.SetReadLimit(64 << 10)
	readErr := make(chan error, 1)
	msgs := make(chan api.TailFilter, 4)
	_ = conn.SetReadDeadline(deadline(90 * time.Second))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(deadline(90 * time.Second)) })
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			_ = conn.SetReadDeadline(deadline(90 * time.Second))
			var m api.TailFilter
			if json.Unmarshal(data, &m) != nil {
				m = api.TailFilter{Type: "invalid"}
			}
			select {
			case msgs <- m:
			default: // a client flooding filter changes loses some
			}
		}
	}()

	expiry := time.NewTimer(g.ExpiresAt.Sub(s.now()))
	defer expiry.Stop()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	progress := time.NewTicker(s.cfg.TailProgressInterval)
	defer progress.Stop()
	var saveCounts <-chan time.Time
	if counts != nil {
		tk := time.NewTicker(s.cfg.ViewCountsInterval)
		defer tk.Stop()
		saveCounts = tk.C
	}
	var saved logs.ViewerStats
	var records recordSaver
	// Identity re-checks run off this goroutine (they call the provider);
	// at most one is in flight.
	var recheck <-chan time.Time
	if t.session != "" && s.cfg.Sessions != nil {
		tk := time.NewTicker(s.cfg.IdentityRecheckInterval)
		defer tk.Stop()
		recheck = tk.C
	}
	rechecked := make(chan string, 1)
	checking := false
	start := s.now()
	expiresAt := g.ExpiresAt
	finish := func(e tailEnd, msg string) tailEnd {
		s.sendEnd(conn, e, msg)
		// The reader goroutine owns reads: wait for it to see the close.
		_ = conn.SetReadDeadline(deadline(time.Second))
		<-readErr
		return e
	}
	// control applies the pending control events; done reports one that
	// ends the tail.
	control := func() (e tailEnd, msg string, done bool) {
		for _, ev := range t.drain() {
			switch ev.Kind {
			case ControlRevoked:
				return endRevoked, "the grant was revoked: " + ev.Reason, true
			case ControlExpired:
				return endExpired, "the grant expired", true
			case ControlSessionEnded:
				return endSession, "your sign-in session was ended (" + ev.Reason + "); sign in again", true
			case controlStale:
				return endStale, "this replica lost touch with the control stream and cannot confirm the grant " +
					"is still valid; reconnect with after=<last seq> (another replica, or this one once it has caught up)", true
			case ControlExtended:
				expiresAt = ev.ExpiresAt
				expiry.Reset(expiresAt.Sub(s.now()))
				_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: "extended",
					Message: "grant extended", ExpiresAt: expiresAt.UTC()})
			}
		}
		return tailEnd{}, "", false
	}
	for {
		select {
		case m, ok := <-v.Messages():
			if !ok {
				switch err := v.Err(); {
				case errors.Is(err, logs.ErrSlow):
					return finish(endSlow, "you fell too far behind the stream")
				case errors.Is(err, logs.ErrHubClosed):
					return finish(endShutdown, "the server is shutting down; reconnect with after=<last seq>")
				default:
					return finish(endUnavailable, "the log backend is unavailable")
				}
			}
			// A control event queued before this message was published goes
			// first (select picks among ready cases at random): once a
			// revocation has reached this tail, nothing more is written.
			if len(t.wake) > 0 {
				<-t.wake
				if e, msg, done := control(); done {
					return finish(e, msg)
				}
			}
			if err := s.writeTailRaw(conn, m.Data); err != nil {
				return endClient
			}
		case <-expiry.C:
			if !s.now().Before(expiresAt) {
				return finish(endExpired, "the grant expired at "+expiresAt.UTC().Format(time.RFC3339))
			}
			expiry.Reset(expiresAt.Sub(s.now()))
		case <-t.wake:
			if e, msg, done := control(); done {
				return finish(e, msg)
			}
		case <-s.shutdown:
			return finish(endShutdown, "the server is shutting down; reconnect with after=<last seq>")
		case err := <-readErr:
			s.log.Debug("tail reader ended", "grant", g.ID, "err", err)
			return endClient
		case m := <-msgs:
			s.applyClientMessage(conn, v, m, g.Level == "")
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, deadline(tailWriteTimeout)); err != nil {
				return endClient
			}
		case <-recheck:
			if !checking {
				checking = true
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if keep, why := s.recheckView(ctx, t, g); !keep {
						if err := s.revokeForIdentity(ctx, g, why); err != nil {
							s.log.Error("revoke a grant whose holder's identity changed", "grant", g.ID, "err", err)
						}
						rechecked <- why
						return
					}
					rechecked <- ""
				}()
			}
		case why := <-rechecked:
			checking = false
			if why != "" {
				// The revocation's control event normally ends the tail
				// first; if recording it failed, end this view anyway.
				return finish(endRevoked, "the grant was revoked: "+ReasonIdentity+": "+why)
			}
		case <-saveCounts:
			st := v.Stats()
			if st.Messages == saved.Messages && st.Dropped == saved.Dropped && st.Sampled == saved.Sampled && st.Paused == saved.Paused {
				continue // nothing new: an idle view costs no write
			}
			saved = st
			// The record and the counts come from the one snapshot st, so
			// they describe the same delivered messages.
			rec, recTo, err := records.next(st.Record)
			if err != nil {
				s.log.Warn("save view record", "err", err)
			}
			if err := counts.Save(audit.ViewCounts{ViewID: viewID, Entries: st.Entries, Bytes: st.Bytes, Dropped: st.Dropped,
				Sampled: st.Sampled, Paused: st.Paused, Digest: st.Digest, EntriesDigest: st.EntriesDigest,
				DigestKind: s.cfg.DigestKind, Redactions: st.Redactions, Record: rec, RecordTo: recTo,
				Seconds: int64(s.now().Sub(start).Seconds()), At: s.now().UTC()}); err != nil {
				records.forget() // the record may not be on disk: write it with the next save
				s.log.Warn("save view counts", "err", err)
			} else {
				s.metrics.viewCountSaves.Inc()
			}
		case <-progress.C:
			st := v.Stats()
			s.recordBestEffort(context.Background(), nil, audit.Event{Action: "stream.progress", Actor: userActor(who),
				Outcome: "success", Target: grantTarget(g), Details: map[string]any{"view_id": viewID, "entries": st.Entries,
					"bytes": st.Bytes, "dropped": st.Dropped, "sampled": st.Sampled, "seconds": int(s.now().Sub(start).Seconds())}})
		}
	}
}

// applyClientMessage changes the viewer's filter. hideRaised is the
// grant's, not the client's to change: lines emitted because another
// grant raised the level stay hidden from a grant that raises none.
func (s *Server) applyClientMessage(conn *websocket.Conn, v *logs.Viewer, m api.TailFilter, hideRaised bool) {
	if m.Type == "pause" || m.Type == "resume" {
		if err := v.SetPaused(m.Type == "pause"); err != nil {
			return
		}
		text := "paused: new entries are not sent (they stay in the backlog) until you resume"
		if m.Type == "resume" {
			text = "resumed: new entries are sent again; what arrived while paused was skipped"
		}
		_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: m.Type + "d", Message: text})
		return
	}
	if m.Type != "filter" {
		_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: "bad_message",
			Message: `unknown message; send {"type":"filter","level":..,"grep":..,"exclude":..,"attrs":{..}}, {"type":"pause"} or {"type":"resume"}`})
		return
	}
	if m.Level != "" && logs.LevelRank(m.Level) == 0 {
		_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: "bad_filter", Message: "unknown level " + strconv.Quote(m.Level)})
		return
	}
	f := logs.Filter{MinLevel: m.Level, Grep: m.Grep, Exclude: m.Exclude, Attrs: m.Attrs, HideRaised: hideRaised}
	if err := v.SetFilter(f); err != nil {
		_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: "bad_filter", Message: err.Error()})
		return
	}
	_ = s.writeTail(conn, api.TailFrame{Type: api.FrameNotice, Code: "filter", Message: "filter updated",
		Filter: &api.TailFilter{Level: f.MinLevel, Grep: f.Grep, Exclude: f.Exclude, Attrs: f.Attrs}})
}

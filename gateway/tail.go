package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/store"
)

// WebSocket close codes of the tail protocol.
const (
	CloseExpired     = 4001
	CloseRevoked     = 4002
	CloseShutdown    = 4003
	CloseLimit       = 4004
	CloseSlow        = 4005
	CloseUnavailable = 4006
)

// tailEnd says why a tail ended: the reason word of the end message, the
// close code and its text.
type tailEnd struct {
	reason string
	code   int
	text   string
}

var (
	endExpired     = tailEnd{"expired", CloseExpired, "grant expired"}
	endRevoked     = tailEnd{"revoked", CloseRevoked, "grant revoked"}
	endShutdown    = tailEnd{"shutdown", CloseShutdown, "server shutting down"}
	endLimit       = tailEnd{"limit_reached", CloseLimit, "tail limit reached"}
	endSlow        = tailEnd{"too_slow", CloseSlow, "viewer too slow"}
	endUnavailable = tailEnd{"backend_unavailable", CloseUnavailable, "log backend unavailable"}
	endClient      = tailEnd{"client_closed", websocket.CloseNormalClosure, ""}
)

// tailSession is one live WebSocket tail. The serving goroutine owns the
// connection; other goroutines reach it only through control().
type tailSession struct {
	grantID, user, stream string

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

// tailRequest is the parsed query of a tail.
type tailRequest struct {
	filter logs.Filter
	opts   logs.SubscribeOptions
	notice string // said to the viewer after subscribing (e.g. backfill capped)
}

func (s *Server) parseTail(q url.Values, g store.Grant, now time.Time) (tailRequest, error) {
	var tr tailRequest
	f := logs.Filter{MinLevel: q.Get("level"), Grep: q.Get("grep"), Exclude: q.Get("exclude")}
	if f.MinLevel != "" && logs.LevelRank(f.MinLevel) == 0 {
		return tr, errBadRequest("level must be one of trace, debug, info, warn, error, fatal")
	}
	for k, vs := range q {
		if key, ok := strings.CutPrefix(k, "attr."); ok && key != "" && len(vs) > 0 {
			if f.Attrs == nil {
				f.Attrs = map[string]string{}
			}
			f.Attrs[key] = vs[0]
		}
	}
	if _, err := f.Compile(); err != nil {
		return tr, errBadRequest("bad filter: " + err.Error())
	}
	tr.filter = f
	tr.opts.Filter = f
	if v := q.Get("lines"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			return tr, errBadRequest("lines must be an integer from 0 to 10000")
		}
		tr.opts.Lines = n
	}
	if v := q.Get("since"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			tr.opts.Since = now.Add(-d)
		} else if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			tr.opts.Since = t
		} else {
			return tr, errBadRequest(`since must be a duration ("10m") or an RFC 3339 time`)
		}
	}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return tr, errBadRequest("after must be a non-negative sequence number")
		}
		tr.opts.After = n
	}
	wantsBackfill := tr.opts.Lines > 0 || !tr.opts.Since.IsZero() || tr.opts.After > 0
	if wantsBackfill {
		floor := now.Add(-g.MaxLookback)
		if g.MaxLookback <= 0 {
			tr.opts.Lines, tr.opts.After = 0, 0
			tr.opts.Since = time.Time{}
			tr.notice = "this grant allows no backfill; showing new lines only"
		} else if tr.opts.Since.IsZero() || tr.opts.Since.Before(floor) {
			if !tr.opts.Since.IsZero() {
				tr.notice = fmt.Sprintf("backfill limited to the last %s by policy", g.MaxLookback)
			}
			tr.opts.Since = floor
		}
	}
	return tr, nil
}

func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		// Not a browser: browsers always send Origin on WebSocket upgrades.
		return true
	}
	return s.origins[strings.TrimRight(o, "/")]
}

// handleTail upgrades to a WebSocket that streams the grant's stream until
// the grant expires or is revoked, the viewer leaves, or the server stops.
func (s *Server) handleTail(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !s.originAllowed(r) {
		_ = s.RecordAuth(ctx, auth.Event{Action: "auth.failed", Reason: "origin", Detail: "cross-origin tail refused",
			RemoteAddr: clientAddrFrom(ctx), UserAgent: r.UserAgent()})
		s.writeError(w, r, errForbidden("cross-origin WebSocket refused"))
		return
	}
	who, err := s.cfg.Auth.Authenticate(r)
	if err != nil {
		s.writeError(w, r, authError(err))
		return
	}
	g, err := s.loadGrant(ctx, r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if g.Holder.ID != who.ID() {
		s.recordBestEffort(ctx, r, audit.Event{Action: "stream.opened", Actor: userActor(who), Outcome: "denied",
			Reason: "grant belongs to someone else", Target: grantTarget(g)})
		s.writeError(w, r, errForbidden("this grant belongs to someone else"))
		return
	}
	now := s.now()
	if !g.ActiveAt(now) {
		state := s.viewGrant(g).State
		s.writeError(w, r, &apiError{Status: http.StatusForbidden, Code: "grant_" + state, Message: "grant is " + state})
		return
	}
	tr, err := s.parseTail(r.URL.Query(), g, now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		s.writeError(w, r, errBadRequest("expected a WebSocket upgrade"))
		return
	}
	stream := logs.Stream{Service: g.Service, Env: g.Env}
	t := &tailSession{grantID: g.ID, user: who.ID(), stream: stream.String(), wake: make(chan struct{}, 1)}
	admitted := s.tails.add(t, s.limits.MaxTailsPerUser, s.limits.MaxTailsPerStream)
	if admitted {
		defer s.tails.remove(t)
		// A revoke committed after loadGrant but before add broadcast to no
		// tail. Now that control events reach t, read the grant again.
		cur, err := s.loadGrant(ctx, g.ID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if !cur.ActiveAt(s.now()) {
			state := s.viewGrant(cur).State
			s.writeError(w, r, &apiError{Status: http.StatusForbidden, Code: "grant_" + state, Message: "grant is " + state})
			return
		}
		g = cur
	}
	viewID := newID("view_")
	opened := audit.Event{Action: "stream.opened", Actor: userActor(who), Outcome: "success", Target: grantTarget(g),
		Details: map[string]any{"view_id": viewID, "level": tr.filter.MinLevel, "grep": tr.filter.Grep, "exclude": tr.filter.Exclude,
			"attrs": tr.filter.Attrs, "lines": tr.opts.Lines, "after": tr.opts.After, "since": timeOrEmpty(tr.opts.Since)}}
	if s.cfg.ReplicaID != "" {
		opened.Details["replica"] = s.cfg.ReplicaID
	}
	if !admitted {
		opened.Outcome, opened.Reason = "denied", "tail limit reached"
	}
	if err := s.record(ctx, r, opened); err != nil {
		s.writeError(w, r, err)
		return
	}
	up := websocket.Upgrader{
		ReadBufferSize: 1024, WriteBufferSize: 4096,
		HandshakeTimeout: 10 * time.Second,
		// Origin was checked above, before anything was recorded.
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: false,
	}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "err", err)
		return
	}
	defer conn.Close()
	if !admitted {
		s.endTail(conn, endLimit, "too many concurrent tails for you or this stream")
		return
	}
	s.metrics.tails.Inc()
	defer s.metrics.tails.Dec()
	start := s.now()
	viewer, err := s.cfg.Hub.Subscribe(stream, tr.opts)
	if err != nil {
		s.endTail(conn, endUnavailable, "could not subscribe to the stream")
		s.recordClosed(r, who, g, viewID, start, nil, endUnavailable)
		return
	}
	defer viewer.Close()
	end := s.serveTail(conn, t, viewer, g, who, tr, viewID)
	viewer.Close() // final stats
	s.recordClosed(r, who, g, viewID, start, viewer, end)
}

func timeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

const tailWriteTimeout = 10 * time.Second

func (s *Server) writeTail(conn *websocket.Conn, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.writeTailRaw(conn, b)
}

func (s *Server) writeTailRaw(conn *websocket.Conn, b []byte) error {
	_ = conn.SetWriteDeadline(s.now().Add(tailWriteTimeout))
	return conn.WriteMessage(websocket.TextMessage, b)
}

// sendEnd writes the end message and the close frame; it never reads.
func (s *Server) sendEnd(conn *websocket.Conn, e tailEnd, msg string) {
	if e.code != websocket.CloseNormalClosure {
		_ = s.writeTail(conn, map[string]string{"type": "end", "reason": e.reason, "message": msg})
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(e.code, e.text), time.Now().Add(time.Second))
}

// endTail sends the end and then waits briefly for the client's close so
// the frame is not lost to a reset. Only for connections with no reader
// goroutine; serveTail lets its reader see the close instead.
func (s *Server) endTail(conn *websocket.Conn, e tailEnd, msg string) {
	s.sendEnd(conn, e, msg)
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	for {
		if _, _, err := conn.NextReader(); err != nil {
			return
		}
	}
}

// clientMessage is what a viewer may send during a tail.
type clientMessage struct {
	Type    string            `json:"type"`
	Level   string            `json:"level"`
	Grep    string            `json:"grep"`
	Exclude string            `json:"exclude"`
	Attrs   map[string]string `json:"attrs"`
}

// serveTail is the tail's write loop. It owns conn's writes; a reader
// goroutine passes client messages in and exits when conn closes.
func (s *Server) serveTail(conn *websocket.Conn, t *tailSession, v *logs.Viewer, g store.Grant, who auth.Identity, tr tailRequest, viewID string) tailEnd {
	sub := map[string]any{"type": "subscribed", "grant_id": g.ID, "service": g.Service, "env": g.Env,
		"expires_at": g.ExpiresAt.UTC().Format(time.RFC3339Nano), "max_lookback": durString(g.MaxLookback),
		"filter":   map[string]any{"level": tr.filter.MinLevel, "grep": tr.filter.Grep, "exclude": tr.filter.Exclude, "attrs": tr.filter.Attrs},
		"backfill": map[string]any{"lines": tr.opts.Lines, "since": timeOrEmpty(tr.opts.Since), "after": tr.opts.After}}
	if err := s.writeTail(conn, sub); err != nil {
		return endClient
	}
	if tr.notice != "" {
		_ = s.writeTail(conn, map[string]string{"type": "notice", "code": "backfill", "message": tr.notice})
	}
	conn.SetReadLimit(64 << 10)
	readErr := make(chan error, 1)
	msgs := make(chan clientMessage, 4)
	_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(90 * time.Second)) })
	go func() {
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			_ = conn.SetReadDeadline(time.Now().Add(90 * time.Second))
			var m clientMessage
			if json.Unmarshal(data, &m) != nil {
				m = clientMessage{Type: "invalid"}
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
	start := s.now()
	expiresAt := g.ExpiresAt
	finish := func(e tailEnd, msg string) tailEnd {
		s.sendEnd(conn, e, msg)
		// The reader goroutine owns reads: wait for it to see the close.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		<-readErr
		return e
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
			if err := s.writeTailRaw(conn, m.Data); err != nil {
				return endClient
			}
		case <-expiry.C:
			if !s.now().Before(expiresAt) {
				return finish(endExpired, "the grant expired at "+expiresAt.UTC().Format(time.RFC3339))
			}
			expiry.Reset(expiresAt.Sub(s.now()))
		case <-t.wake:
			for _, ev := range t.drain() {
				switch ev.Kind {
				case ControlRevoked:
					return finish(endRevoked, "the grant was revoked: "+ev.Reason)
				case ControlExpired:
					return finish(endExpired, "the grant expired")
				case ControlExtended:
					expiresAt = ev.ExpiresAt
					expiry.Reset(expiresAt.Sub(s.now()))
					_ = s.writeTail(conn, map[string]string{"type": "notice", "code": "extended",
						"message": "grant extended", "expires_at": expiresAt.UTC().Format(time.RFC3339Nano)})
				}
			}
		case <-s.shutdown:
			return finish(endShutdown, "the server is shutting down; reconnect with after=<last seq>")
		case err := <-readErr:
			s.log.Debug("tail reader ended", "grant", g.ID, "err", err)
			return endClient
		case m := <-msgs:
			s.applyClientMessage(conn, v, m)
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(tailWriteTimeout)); err != nil {
				return endClient
			}
		case <-progress.C:
			st := v.Stats()
			s.recordBestEffort(context.Background(), nil, audit.Event{Action: "stream.progress", Actor: userActor(who),
				Outcome: "success", Target: grantTarget(g), Details: map[string]any{"view_id": viewID, "entries": st.Entries,
					"bytes": st.Bytes, "dropped": st.Dropped, "seconds": int(s.now().Sub(start).Seconds())}})
		}
	}
}

func (s *Server) applyClientMessage(conn *websocket.Conn, v *logs.Viewer, m clientMessage) {
	if m.Type != "filter" {
		_ = s.writeTail(conn, map[string]string{"type": "notice", "code": "bad_message",
			"message": `unknown message; send {"type":"filter","level":..,"grep":..,"exclude":..,"attrs":{..}}`})
		return
	}
	if m.Level != "" && logs.LevelRank(m.Level) == 0 {
		_ = s.writeTail(conn, map[string]string{"type": "notice", "code": "bad_filter", "message": "unknown level " + strconv.Quote(m.Level)})
		return
	}
	f := logs.Filter{MinLevel: m.Level, Grep: m.Grep, Exclude: m.Exclude, Attrs: m.Attrs}
	if err := v.SetFilter(f); err != nil {
		_ = s.writeTail(conn, map[string]string{"type": "notice", "code": "bad_filter", "message": err.Error()})
		return
	}
	_ = s.writeTail(conn, map[string]any{"type": "notice", "code": "filter", "message": "filter updated",
		"filter": map[string]any{"level": f.MinLevel, "grep": f.Grep, "exclude": f.Exclude, "attrs": f.Attrs}})
}

// recordClosed writes stream.closed with what was sent. Failing to record
// it is counted and logged; the stream has ended either way.
func (s *Server) recordClosed(r *http.Request, who auth.Identity, g store.Grant, viewID string, start time.Time, v *logs.Viewer, e tailEnd) {
	details := map[string]any{"view_id": viewID, "close_reason": e.reason, "close_code": e.code,
		"duration_ms": s.now().Sub(start).Milliseconds(), "entries": 0, "bytes": 0, "dropped": 0}
	if v != nil {
		st := v.Stats()
		details["entries"], details["bytes"], details["dropped"] = st.Entries, st.Bytes, st.Dropped
		details["redactions"] = st.Redactions
		details["sha256"] = st.Digest
		details["digest_kind"] = s.cfg.DigestKind
	}
	ctx := withRequestID(context.Background(), requestID(r.Context()))
	ctx = withClientAddr(ctx, clientAddrFrom(r.Context()))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.record(ctx, r, audit.Event{Action: "stream.closed", Actor: userActor(who), Outcome: "success",
		Reason: e.reason, Target: grantTarget(g), Details: details}); err != nil {
		s.log.Error("could not audit stream.closed", "grant", g.ID, "err", err)
	}
}

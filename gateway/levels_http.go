package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// The control channel: GET /api/v1/control/levels, authenticated with a
// source token, tells services which levels to log at (LevelRule) for the
// streams the token may write. Over a WebSocket it sends a "levels" frame
// on connect and on every change and reads "ack" frames; as plain HTTP it
// is a long poll: ?version=<last seen> waits (up to ?wait=, at most
// maxLongPoll) for a change, and a poll naming a version acknowledges it.

const (
	maxLongPoll     = 60 * time.Second
	defaultLongPoll = 25 * time.Second
	// levelAckWindow is how long a change waits for services to
	// acknowledge before its audit event is written.
	levelAckWindow = 2 * time.Second
)

// endSourceRevoked ends a control connection whose source token was revoked.
var endSourceRevoked = tailEnd{"source_revoked", CloseRevoked, "source token revoked"}

// levelsFrame is what the service receives.
type levelsFrame struct {
	Type    string      `json:"type"` // "levels"
	Version uint64      `json:"version"`
	Levels  []LevelRule `json:"levels"`
}

// ackFrame is what a service sends back after applying a levels frame.
type ackFrame struct {
	Type    string `json:"type"` // "ack"
	Version uint64 `json:"version"`
}

// controlQuery is the parsed query of the control endpoint.
type controlQuery struct {
	allows   func(service, env string) bool
	instance string
	version  uint64
	hasVer   bool
	wait     time.Duration
}

func (s *Server) parseControl(r *http.Request, src store.Source) (controlQuery, error) {
	q := r.URL.Query()
	cq := controlQuery{allows: src.Allows, instance: q.Get("instance"), wait: defaultLongPoll}
	service, env := q.Get("service"), q.Get("env")
	if service != "" || env != "" {
		if err := checkStreamName("service", service); err != nil {
			return cq, err
		}
		if err := checkStreamName("env", env); err != nil {
			return cq, err
		}
		if !src.Allows(service, env) {
			s.sourceControlDenied(r, src, service, env)
			return cq, errForbidden("this source token may not write " + service + "/" + env)
		}
		cq.allows = func(sv, e string) bool { return sv == service && e == env }
	}
	if len(cq.instance) > 128 || !printable(cq.instance) {
		return cq, errBadRequest("instance must be at most 128 printable characters")
	}
	if cq.instance == "" {
		cq.instance = newID("inst_")
	}
	if v := q.Get("version"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return cq, errBadRequest("version must be a non-negative integer (the last version received)")
		}
		cq.version, cq.hasVer = n, true
	}
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxLongPoll {
			return cq, errBadRequest("wait must be a duration from 0s to " + maxLongPoll.String())
		}
		cq.wait = d
	}
	return cq, nil
}

// sourceControlDenied audits a source asking for the levels of a stream it
// may not write: control.levels, outcome denied, aggregated like refused
// writes.
func (s *Server) sourceControlDenied(r *http.Request, src store.Source, service, env string) {
	ev := audit.Event{Action: "control.levels", Outcome: audit.OutcomeDenied,
		Reason: "source may not write this stream",
		Actor:  audit.Actor{Kind: audit.ActorSource, ID: src.ID, Name: src.Name},
		Target: audit.Target{SourceID: src.ID, Service: service, Env: env}, Details: map[string]any{"route": r.URL.Path}}
	s.fillFromRequest(r, &ev)
	s.sourceBursts.add("control|"+src.ID+"|"+service+"/"+env+"|"+ev.SourceAddr, ev)
}

// handleControlLevels serves the control channel (see the top of the file).
func (s *Server) handleControlLevels(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.writeError(w, r, errForbidden("cross-origin WebSocket refused"))
		return
	}
	src, err := s.source(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	cq, err := s.parseControl(r, src)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if !websocket.IsWebSocketUpgrade(r) {
		s.longPollLevels(w, r, cq)
		return
	}
	sub := &levelSub{instance: cq.instance, allows: cq.allows, wake: make(chan struct{}, 1), seen: s.now()}
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 4096, HandshakeTimeout: 10 * time.Second,
		CheckOrigin: func(*http.Request) bool { return true }} // checked above
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("control websocket upgrade failed", "err", err)
		return
	}
	defer conn.Close()
	s.levels.subscribe(sub)
	defer s.levels.unsubscribe(sub)
	s.metrics.controlConns.Inc()
	defer s.metrics.controlConns.Dec()
	s.serveControl(conn, sub, src.TokenHash)
}

// sourceRevoked says whether the source with this token hash is gone, so
// a long-lived control connection ends soon after its token is revoked.
// A store error keeps the connection (the level state is not a secret).
func (s *Server) sourceRevoked(tokenHash string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	src, err := s.cfg.Store.SourceByTokenHash(ctx, tokenHash)
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	return err == nil && !src.RevokedAt.IsZero()
}

// serveControl is the control socket's write loop; a reader goroutine
// records acks and exits when conn closes.
func (s *Server) serveControl(conn *websocket.Conn, sub *levelSub, tokenHash string) {
	conn.SetReadLimit(4 << 10)
	readErr := make(chan error, 1)
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
			var a ackFrame
			if json.Unmarshal(data, &a) != nil || a.Type != "ack" {
				continue // the channel is one-way but for acks
			}
			s.levels.ack(sub, a.Version, s.now())
		}
	}()
	ping := time.NewTicker(30 * time.Second)
	defer ping.Stop()
	var sent uint64
	first := true
	for {
		if v, rules, _ := s.levels.current(sub.allows); first || v != sent {
			first, sent = false, v
			if err := s.writeTail(conn, levelsFrame{Type: "levels", Version: v, Levels: rules}); err != nil {
				return
			}
		}
		select {
		case <-sub.wake:
		case <-ping.C:
			if s.sourceRevoked(tokenHash) {
				s.sendEnd(conn, endSourceRevoked, "the source token was revoked")
				_ = conn.SetReadDeadline(deadline(time.Second))
				<-readErr
				return
			}
			if err := conn.WriteControl(websocket.PingMessage, nil, deadline(tailWriteTimeout)); err != nil {
				return
			}
		case <-s.shutdown:
			s.sendEnd(conn, endShutdown, "the server is shutting down; reconnect")
			_ = conn.SetReadDeadline(deadline(time.Second))
			<-readErr
			return
		case <-readErr:
			return
		}
	}
}

// longPollLevels answers the plain-HTTP form of the control channel. A
// poller is one levelSub per instance id, kept between polls so its acks
// count, and forgotten once its next poll is overdue.
func (s *Server) longPollLevels(w http.ResponseWriter, r *http.Request, cq controlQuery) {
	sub := s.levels.poller(cq.instance, cq.allows, s.now())
	if cq.hasVer {
		s.levels.ack(sub, cq.version, s.now())
	}
	v, rules, changed := s.levels.current(sub.allows)
	if cq.hasVer && v == cq.version && cq.wait > 0 {
		t := time.NewTimer(cq.wait)
		defer t.Stop()
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.shutdown:
		}
		v, rules, _ = s.levels.current(sub.allows)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, levelsFrame{Type: "levels", Version: v, Levels: rules})
}

// levelChanges publishes, counts and audits changes of the rules. remote
// says they came from another replica's snapshot: those are not published
// again, and audited here only if services listen on this replica.
func (s *Server) levelChanges(ctx context.Context, changes []levelChange, remote bool) {
	if len(changes) == 0 {
		return
	}
	if !remote {
		s.publishLevels(ctx, true)
	}
	for _, c := range changes {
		if c.kind == levelGrants {
			continue
		}
		s.metrics.levelChanges.WithLabelValues(c.kind).Inc()
		go s.auditLevelChange(c, remote)
	}
}

// publishLevels sends this replica's views to the others: always after a
// change, and as a heartbeat while any is open.
func (s *Server) publishLevels(ctx context.Context, changed bool) {
	if s.cfg.Broadcast == nil || s.cfg.ReplicaID == "" {
		return
	}
	if !changed && !s.levels.hasLocal() {
		return
	}
	snap := s.levels.snapshot(s.cfg.ReplicaID)
	if err := s.cfg.Broadcast.Publish(ctx, ControlEvent{Kind: ControlLevels, Levels: &snap}); err != nil {
		s.log.Error("publish raised levels failed", "err", err)
	}
}

// auditLevelChange waits until every service instance listening for the
// stream on this replica acknowledged the change (or levelAckWindow
// passed), then records stream.debug_enabled or stream.debug_disabled.
// It runs on its own goroutine and ends within the window.
func (s *Server) auditLevelChange(c levelChange, remote bool) {
	ctx, cancel := context.WithTimeout(context.Background(), levelAckWindow+10*time.Second)
	defer cancel()
	window := time.NewTimer(levelAckWindow)
	defer window.Stop()
	var connected, acked int
	var last time.Time
	for {
		wake := s.levels.ackChanged()
		connected, acked, last = s.levels.acks(c.rule.Service, c.rule.Env, c.version, s.now())
		if acked >= connected {
			break
		}
		select {
		case <-wake:
			continue
		case <-window.C:
		case <-s.shutdown:
		}
		connected, acked, last = s.levels.acks(c.rule.Service, c.rule.Env, c.version, s.now())
		break
	}
	if remote && connected == 0 {
		return // the replica holding the view records it
	}
	action := "stream.debug_enabled"
	if c.kind == levelDisabled {
		action = "stream.debug_disabled"
	}
	details := map[string]any{"level": c.rule.Level, "scope": scopeKey(c.rule.Scope), "grants": c.rule.Grants,
		"version": c.version, "changed_at": c.at.UTC().Format(time.RFC3339Nano),
		"instances_connected": connected, "instances_acknowledged": acked, "acknowledged_at": timeOrEmpty(last)}
	if s.cfg.ReplicaID != "" {
		details["replica"] = s.cfg.ReplicaID
	}
	target := audit.Target{Service: c.rule.Service, Env: c.rule.Env}
	if len(c.rule.Grants) > 0 {
		target.GrantID = c.rule.Grants[0]
	}
	if err := s.record(ctx, nil, audit.Event{Action: action, Actor: systemActor, Outcome: "success",
		Target: target, Details: details}); err != nil {
		s.metrics.levelAuditFailures.Inc()
		s.log.Error("could not audit a level change", "action", action, "stream", c.rule.Service+"/"+c.rule.Env, "err", err)
	}
}

package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/store"
)

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
		s.recordBestEffort(ctx, r, audit.Event{Action: "stream.opened", Actor: userActor(who), Outcome: "denied",
			Reason: "grant is " + state, Target: grantTarget(g)})
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
	if who.SessionID != "" {
		t.session = auth.SessionHandle(who.SessionID)
	}
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
	if g.Level != "" {
		// Committed before the level is raised: if it cannot be recorded,
		// neither the view nor the raise happens.
		opened.Details["raises_level"] = g.Level
		opened.Details["raises_scope"] = scopeKey(g.Scope)
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
	if g.Level != "" {
		s.levelChanges(ctx, s.levels.open(LevelView{ViewID: viewID, GrantID: g.ID, Service: g.Service, Env: g.Env,
			Level: g.Level, Scope: g.Scope, ExpiresAt: g.ExpiresAt}, s.now()), false)
		defer func() { s.levelChanges(context.Background(), s.levels.close(viewID, s.now()), false) }()
	}
	counts := s.openViewCounts(viewID)
	end := s.serveTail(conn, t, viewer, g, who, tr, viewID, counts)
	viewer.Close() // final stats
	kept := s.recordClosed(r, who, g, viewID, start, viewer, end)
	if counts != nil {
		// Keep the saved counts for start-up recovery unless the close is
		// in the trail or the spool.
		_ = counts.Close(kept)
	}
}

// openViewCounts creates the view's counts file; nil without
// Config.ViewCounts or when it cannot be created (logged: the view then
// relies on stream.progress alone).
func (s *Server) openViewCounts(viewID string) *audit.ViewCountsFile {
	if s.cfg.ViewCounts == nil {
		return nil
	}
	f, err := s.cfg.ViewCounts.Create(viewID)
	if err != nil {
		s.log.Error("cannot save view counts; a crash would lose them", "err", err)
		return nil
	}
	return f
}

func (s *Server) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		// Not a browser: browsers always send Origin on WebSocket upgrades.
		return true
	}
	return s.origins[strings.TrimRight(o, "/")]
}

// tailRequest is the parsed query of a tail.
type tailRequest struct {
	filter logs.Filter
	opts   logs.SubscribeOptions
	notice string // said to the viewer after subscribing (e.g. backfill capped)
}

func (s *Server) parseTail(q url.Values, g store.Grant, now time.Time) (tailRequest, error) {
	var tr tailRequest
	f := logs.Filter{MinLevel: q.Get("level"), Grep: q.Get("grep"), Exclude: q.Get("exclude"), HideRaised: g.Level == ""}
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

func timeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// recordClosed writes stream.closed with what was sent. The view has ended
// whatever happens, so the event cannot be refused: when the trail is
// unavailable it goes to the spool (Config.Spool), which appends it once
// the trail is back. It reports whether the event is durably kept (in the
// trail or the spool); if not, the failure is counted and logged, and the
// view's saved counts are kept for start-up recovery.
func (s *Server) recordClosed(r *http.Request, who auth.Identity, g store.Grant, viewID string, start time.Time, v *logs.Viewer, e tailEnd) bool {
	details := map[string]any{"view_id": viewID, "close_reason": e.reason, "close_code": e.code,
		"duration_ms": s.now().Sub(start).Milliseconds(), "entries": 0, "bytes": 0, "dropped": 0, "sampled": 0}
	if v != nil {
		st := v.Stats()
		details["entries"], details["bytes"], details["dropped"], details["sampled"] = st.Entries, st.Bytes, st.Dropped, st.Sampled
		details["redactions"] = st.Redactions
		details["sha256"] = st.Digest
		details["digest_kind"] = s.cfg.DigestKind
		details["entries_sha256"] = st.EntriesDigest
		details["paused"] = st.Paused
		details["replay"] = fitRecord(st.Record)
	}
	ctx := withRequestID(context.Background(), requestID(r.Context()))
	ctx = withClientAddr(ctx, clientAddrFrom(r.Context()))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ev := audit.Event{Action: "stream.closed", Actor: userActor(who), Outcome: "success",
		Reason: e.reason, Target: grantTarget(g), Details: details}
	if err := s.recordClosing(ctx, r, ev); err != nil {
		s.log.Error("could not audit stream.closed", "grant", g.ID, "err", err)
		return false
	}
	return true
}

// recordClosing is record for events that cannot be refused: with a spool
// they are spooled when the trail is unavailable.
func (s *Server) recordClosing(ctx context.Context, r *http.Request, ev audit.Event) error {
	if s.cfg.Spool == nil {
		return s.record(ctx, r, ev)
	}
	ev.RequestID = requestID(ctx)
	ev.SourceAddr = clientAddrFrom(ctx)
	if r != nil {
		ev.UserAgent = truncate(r.UserAgent(), 256)
	}
	_, spooled, err := s.cfg.Spool.Record(ctx, ev)
	if err != nil {
		s.metrics.auditFailures.Inc()
		return errAudit(err)
	}
	if spooled {
		s.log.Warn("audit trail unavailable: event spooled for later append", "action", ev.Action, "grant", ev.Target.GrantID)
	} else {
		s.metrics.auditEvents.WithLabelValues(ev.Action).Inc()
	}
	return nil
}

// maxRecordJSON bounds the replay record in stream.closed, well inside the
// trail's per-event limit with the rest of the details.
const maxRecordJSON = 40 << 10

// fitRecord drops the trailing ranges (and then the skips) of a record too
// big for its event, marking it truncated: the replay then says which part
// is not recorded rather than the close failing to be recorded at all.
func fitRecord(rec logs.ViewRecord) logs.ViewRecord {
	for {
		b, err := json.Marshal(rec)
		if err != nil || len(b) <= maxRecordJSON {
			return rec
		}
		rec.Truncated = true
		switch {
		case len(rec.Skips) > 0:
			rec.Skips = rec.Skips[:len(rec.Skips)/2]
		case len(rec.Ranges) > 0:
			rec.Ranges = rec.Ranges[:len(rec.Ranges)/2]
		default:
			rec.Epochs = nil // filters alone too big: nothing can be replayed
			return rec
		}
	}
}

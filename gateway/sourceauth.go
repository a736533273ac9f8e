package gateway

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/store"
)

// Reasons of a refused source token (auth.failed with actor kind source).
const (
	sourceReasonNoCredentials = "no_credentials"        // no bearer at all (as for users)
	sourceReasonUnknown       = "unknown_token"         // no source has this token
	sourceReasonRevoked       = "revoked"               // the source was revoked
	sourceReasonNoCertificate = "no_client_certificate" // SourceAuthBoth and no certificate
)

// sourceTokenLen is the length of a generated source token ("lgs_" + 43).
const sourceTokenLen = 4 + 43

// tokenFingerprint is what the trail may keep of a refused source token:
// the first 12 hex characters of its SHA-256 (as source.created records),
// and only for a token shaped like a generated one, whose 256 random bits
// make the prefix irreversible. A stray password or other secret sent by
// mistake is never hashed into the trail, where a short hash could be
// searched for.
func tokenFingerprint(token string) string {
	if len(token) != sourceTokenLen || !strings.HasPrefix(token, "lgs_") {
		return ""
	}
	return HashSourceToken(token)[:12]
}

// sourceAuthFailed audits a refused source token: auth.failed, actor kind
// source (with the source's id when the token names a revoked one),
// aggregated in bursts like failed sign-ins.
func (s *Server) sourceAuthFailed(r *http.Request, reason, token string, src *store.Source) {
	ev := audit.Event{Action: "auth.failed", Outcome: audit.OutcomeFailure, Reason: reason,
		Actor:   audit.Actor{Kind: audit.ActorSource, Name: "(unauthenticated)"},
		Details: map[string]any{"route": r.URL.Path}}
	key := reason
	switch reason {
	case sourceReasonNoCredentials:
		ev.Details["detail"] = "no source token (Authorization: Bearer <token>)"
	case sourceReasonUnknown:
		ev.Details["detail"] = "no source has this token"
	case sourceReasonNoCertificate:
		ev.Details["detail"] = "no client certificate (required with the source token)"
	case sourceReasonRevoked:
		ev.Details["detail"] = "the source was revoked"
		ev.Actor = audit.Actor{Kind: audit.ActorSource, ID: src.ID, Name: src.Name}
		ev.Target.SourceID = src.ID
		key += "|" + src.ID
	}
	if fp := tokenFingerprint(token); fp != "" {
		ev.Details["token_sha256_prefix"] = fp
	}
	s.fillFromRequest(r, &ev)
	s.sourceBursts.add(key+"|"+burstAddr(ev.SourceAddr), ev)
}

// sourceWriteDenied audits a source writing to a stream it is not bound
// to: ingest.write, outcome denied, aggregated like failures (a
// misconfigured shipper retries fast, and each retry is the same fact).
func (s *Server) sourceWriteDenied(r *http.Request, src store.Source, service, env string) {
	ev := audit.Event{Action: "ingest.write", Outcome: audit.OutcomeDenied,
		Reason: "source may not write this stream",
		Actor:  audit.Actor{Kind: audit.ActorSource, ID: src.ID, Name: src.Name},
		Target: audit.Target{SourceID: src.ID, Service: service, Env: env}, Details: map[string]any{"route": r.URL.Path}}
	s.fillFromRequest(r, &ev)
	s.sourceBursts.add("denied|"+src.ID+"|"+service+"/"+env+"|"+burstAddr(ev.SourceAddr), ev)
}

// burstAddr is the part of a client address a burst is keyed by: an IPv4
// address, or the /64 of an IPv6 one. One host commonly holds a whole /64,
// and keyed by full address it could make every refusal the first of a new
// burst, each one written to the trail at once (up to the aggregator's max
// keys per window). The event still records the full address.
func burstAddr(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Unmap().Is4() {
		return addr
	}
	p, err := a.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

func (s *Server) fillFromRequest(r *http.Request, ev *audit.Event) {
	ev.RequestID = requestID(r.Context())
	ev.SourceAddr = clientAddrFrom(r.Context())
	ev.UserAgent = truncate(r.UserAgent(), 256)
}

// overflowBurstKey stands for every address once a burst aggregator tracks
// max keys.
const overflowBurstKey = "(many)"

// burstAggregator turns a flood of like audit events into a few, as the
// authenticator does for failed sign-ins: per key and window, the first
// event is recorded at once (details.count absent, i.e. 1) and the rest as
// one event with details.count when the window ends, or at the next event
// of that key after it ended, or on close. Memory is bounded by max keys;
// beyond, events share an overflow key per action, reason and actor.
// Recording is best effort: the request is refused either way, so a trail
// failure is logged and counted.
//
// It owns one goroutine (the flusher), started with the first event and
// stopped by close; after close events are recorded one by one.
type burstAggregator struct {
	record func(context.Context, audit.Event) error
	now    func() time.Time
	window time.Duration
	max    int

	mu      sync.Mutex // guards the fields below
	pending map[string]*burst
	running bool // the flusher is started
	closed  bool

	stop chan struct{}
	done chan struct{}
}

type burst struct {
	start time.Time
	ev    audit.Event // the window's first event, as a template
	count int         // events since start not yet recorded
}

func newBurstAggregator(record func(context.Context, audit.Event) error, now func() time.Time, window time.Duration, max int) *burstAggregator {
	return &burstAggregator{record: record, now: now, window: window, max: max, pending: map[string]*burst{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (b *burstAggregator) add(key string, ev audit.Event) {
	now := b.now()
	var out []audit.Event
	b.mu.Lock()
	switch {
	case b.closed:
		out = append(out, ev)
	default:
		if !b.running {
			b.running = true
			go b.loop()
		}
		cur, ok := b.pending[key]
		if !ok && len(b.pending) >= b.max {
			// One overflow burst per action, reason and actor (few: the
			// actor is a known source or none), so its count is never
			// told under another refusal's reason or source. The stream
			// a denied write named varies, so it is not kept.
			key = overflowBurstKey + "|" + ev.Action + "|" + ev.Reason + "|" + ev.Actor.ID
			ev.SourceAddr, ev.UserAgent = overflowBurstKey, ""
			ev.Target.Service, ev.Target.Env = "", ""
			cur, ok = b.pending[key]
		}
		if ok && now.Sub(cur.start) < b.window {
			cur.count++
			break
		}
		if ok && cur.count > 0 {
			out = append(out, cur.summary())
		}
		b.pending[key] = &burst{start: now, ev: ev}
		out = append(out, ev)
	}
	b.mu.Unlock()
	b.send(out)
}

func (b *burstAggregator) loop() {
	defer close(b.done)
	t := time.NewTicker(b.window)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.flush(false)
		}
	}
}

// flush records the counts of ended windows (of all windows when all).
func (b *burstAggregator) flush(all bool) {
	now := b.now()
	var out []audit.Event
	b.mu.Lock()
	for k, cur := range b.pending {
		if !all && now.Sub(cur.start) < b.window {
			continue
		}
		if cur.count > 0 {
			out = append(out, cur.summary())
		}
		delete(b.pending, k)
	}
	b.mu.Unlock()
	b.send(out)
}

// close records what is pending and stops the flusher.
func (b *burstAggregator) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	running := b.running
	b.mu.Unlock()
	if running {
		close(b.stop)
		<-b.done
	}
	b.flush(true)
}

// summary is the template with the count of the events after it; the
// first event's request id and token fingerprint belong to it alone.
func (cur *burst) summary() audit.Event {
	ev := cur.ev
	d := make(map[string]any, len(ev.Details)+1)
	for k, v := range ev.Details {
		if k != "token_sha256_prefix" {
			d[k] = v
		}
	}
	d["count"] = cur.count
	detail, _ := d["detail"].(string)
	d["detail"] = "aggregated: " + detail // worded as failed sign-ins are
	ev.Details, ev.RequestID = d, ""
	return ev
}

func (b *burstAggregator) send(evs []audit.Event) {
	for _, ev := range evs {
		ctx, cancel := context.WithTimeout(context.Background(), emitTimeout)
		_ = b.record(ctx, ev)
		cancel()
	}
}

// emitTimeout bounds recording one aggregated event outside a request.
const emitTimeout = 5 * time.Second

// sourceFailureWindow is the aggregation window of refused source tokens
// and writes, the authenticator's default for failed sign-ins.
const sourceFailureWindow = 10 * time.Second

// appendRefusal records an event as built (its request id and address are
// already set): a refusal, so a failure is logged and counted, not returned
// to a client that is refused anyway.
func (s *Server) appendRefusal(ctx context.Context, ev audit.Event) error {
	if _, err := s.cfg.Audit.Append(ctx, ev); err != nil {
		s.metrics.auditFailures.Inc()
		s.log.Warn("could not audit a refused source", "action", ev.Action, "reason", ev.Reason, "err", err)
		return err
	}
	s.metrics.auditEvents.WithLabelValues(ev.Action).Inc()
	return nil
}

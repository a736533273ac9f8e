package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// idlePoll is how often the loop looks at the outbox when nothing is due
// and nobody woke it (a safety net; Notify and finished attempts wake it).
const idlePoll = 30 * time.Second

// run is the delivery loop, owned by the Notifier; Close ends it.
func (n *Notifier) run() {
	defer close(n.done)
	timer := time.NewTimer(0)
	defer timer.Stop()
	drained := false
	for {
		wait := n.dispatch()
		if !drained && n.drainOver() {
			close(n.drained)
			drained = true
		}
		timer.Reset(wait)
		select {
		case <-n.stop:
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}

// drainOver reports whether Close has begun and nothing is left to drain:
// no row due and no attempt in flight. A finishing attempt wakes the loop,
// which asks again. An unreadable outbox ends the drain.
func (n *Notifier) drainOver() bool {
	n.mu.Lock()
	closed, busy := n.closed, len(n.inflight)-len(n.finished)
	n.mu.Unlock()
	if !closed {
		return false
	}
	due, err := n.box.countDue(context.Background(), n.now())
	return err != nil || due+busy == 0
}

// dispatch starts an attempt for each due row not already in flight and
// says how long to sleep before looking again.
func (n *Notifier) dispatch() time.Duration {
	ctx := n.ctx
	n.mu.Lock()
	for _, id := range n.finished {
		delete(n.inflight, id)
	}
	n.finished = n.finished[:0]
	n.mu.Unlock()
	now := n.now()
	rows, next, err := n.box.due(ctx, now, 64)
	if err != nil {
		n.log.Error("notify: read outbox", "err", err)
		return time.Second
	}
	held := false // something due waits for a slot or is in flight
	for _, r := range rows {
		n.mu.Lock()
		busy := n.inflight[r.ID]
		n.mu.Unlock()
		if busy {
			held = true
			continue
		}
		if !r.Urgent {
			select {
			case n.sem <- struct{}{}:
			default:
				held = true
				continue
			}
		}
		n.mu.Lock()
		n.inflight[r.ID] = true
		n.mu.Unlock()
		n.attempts.Add(1)
		go n.attempt(r)
	}
	if held {
		// A finishing attempt wakes the loop; this is only a fallback.
		return time.Second
	}
	wait := idlePoll
	if mw := n.box.maxWait(); mw > 0 {
		wait = min(wait, mw)
	}
	if next.IsZero() {
		return wait
	}
	return min(max(next.Sub(n.now()), time.Millisecond), wait)
}

// attempt makes one delivery attempt of r and records its outcome.
func (n *Notifier) attempt(r row) {
	defer n.attempts.Done()
	defer func() {
		// dispatch clears the in-flight mark itself, before its next read
		// of the outbox, so it never acts on a read older than this
		// attempt's update (which would deliver the message twice).
		n.mu.Lock()
		n.finished = append(n.finished, r.ID)
		n.mu.Unlock()
		if !r.Urgent {
			<-n.sem
		}
		n.poke()
	}()
	ctx := context.WithoutCancel(n.ctx) // record the outcome even when Close aborts the request
	t := n.byKey[r.Target]
	if t == nil {
		// The target was removed from the configuration since this was queued.
		n.log.Warn("notify: target no longer configured; abandoning message", "kind", r.Kind, "id", r.MsgID)
		if err := n.box.fail(ctx, r, n.now(), true, "target no longer configured"); err != nil {
			n.log.Error("notify: update outbox", "err", err)
		}
		return
	}
	status, retryAfter, err := n.post(t, r)
	if n.ctx.Err() != nil && err != nil {
		return // aborted by Close: not an attempt; the row stays due
	}
	if err == nil {
		if derr := n.box.done(ctx, r); derr != nil {
			n.log.Error("notify: update outbox", "err", derr)
		}
		n.report(r.Kind, OutcomeDelivered)
		return
	}
	now := n.now()
	delay := backoff(r.Attempts+1, n.cfg.MinBackoff, n.cfg.MaxBackoff)
	if retryAfter > 0 {
		delay = max(delay, min(retryAfter, n.cfg.MaxRetryAfter))
	}
	abandon := now.Add(delay).Sub(r.Created) > n.cfg.MaxAge
	outcome := OutcomeRetrying
	if abandon {
		outcome = OutcomeAbandoned
	}
	n.log.Warn("notify: delivery failed", "kind", r.Kind, "id", r.MsgID, "target", r.Target,
		"attempt", r.Attempts+1, "status", status, "err", err, "retry_in", delay, "abandoned", abandon)
	if ferr := n.box.fail(ctx, r, now.Add(delay), abandon, truncate(err.Error(), 500)); ferr != nil {
		n.log.Error("notify: update outbox", "err", ferr)
	}
	n.report(r.Kind, outcome)
}

func (n *Notifier) report(kind, outcome string) {
	if n.cfg.OnAttempt != nil {
		n.cfg.OnAttempt(kind, outcome)
	}
}

// post sends r to t. A nil error means a 2xx answer. retryAfter is the
// receiver's Retry-After, if it sent one.
func (n *Notifier) post(t *target, r row) (status int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, t.url, bytes.NewReader(r.Body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "loggate-webhook/1")
	if len(t.secret) > 0 {
		ts := strconv.FormatInt(n.now().Unix(), 10)
		req.Header.Set("webhook-id", r.MsgID)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", Sign(t.secret, r.MsgID, ts, r.Body))
	}
	resp, err := n.cfg.Client.Do(req)
	if err != nil {
		// The client's error names the URL; keep only the cause's kind.
		return 0, 0, fmt.Errorf("post: %w", scrubURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, nil
	}
	return resp.StatusCode, parseRetryAfter(resp.Header.Get("Retry-After"), n.now()),
		fmt.Errorf("receiver answered %d", resp.StatusCode)
}

// scrubURL drops the URL from a *url.Error (it may hold a token).
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// backoff is the delay after the attempt-th failure: min·2^(attempt-1),
// capped at max, with "equal jitter" (a random point in its upper half) so
// many messages failing together do not retry in lockstep.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date, at most a week. Zero means absent or unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	const week = 7 * 24 * time.Hour
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(week/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(0, t.Sub(now)), week)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

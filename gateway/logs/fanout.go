package logs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// stream is the state of one log stream. Everything in it is guarded by mu.
type stream struct {
	key Stream
	ret Retention

	mu      sync.Mutex
	loaded  bool  // ring and lastSeq restored from the backlog
	lastSeq int64 // seq of the newest entry ever published
	ring    ring
	// groups holds the viewers by filter key: viewers with equal keys share
	// the filtering work and the encoded messages.
	groups  map[string]*group
	viewers int
}

// group is the set of viewers sharing one filter key; guarded by stream.mu.
type group struct {
	matcher *Matcher
	viewers map[*Viewer]struct{}
	rate    sampler
}

func (st *stream) joinLocked(v *Viewer, m *Matcher) {
	g := st.groups[m.Key()]
	if g == nil {
		if st.groups == nil {
			st.groups = make(map[string]*group)
		}
		g = &group{matcher: m, viewers: make(map[*Viewer]struct{})}
		st.groups[m.Key()] = g
	}
	g.viewers[v] = struct{}{}
	v.group = g
	st.viewers++
	if g.rate.sampling {
		// Joining a group that is sampling: say so, as its members were told.
		v.offer(g.rate.notice(v.hub.maxRate))
	}
}

func (st *stream) leaveLocked(v *Viewer) {
	g := v.group
	if g == nil {
		return
	}
	delete(g.viewers, v)
	if len(g.viewers) == 0 {
		delete(st.groups, g.matcher.Key())
	}
	v.group = nil
	st.viewers--
}

// maxEntriesPerMessage bounds an "entries" message (live and backfill), so a
// huge Publish or backfill does not become one huge WebSocket message.
const maxEntriesPerMessage = 500

// fanoutLocked delivers a published batch (already in seq order) to every
// group: filter once, encode once, offer the same Message to each viewer.
// A batch becomes one message per group (more if over maxEntriesPerMessage).
func (st *stream) fanoutLocked(h *Hub, batch []Entry, now time.Time) {
	var scratch []Entry
	for _, g := range st.groups {
		sel, copied, skipped := g.selectLocked(batch, scratch, now, h.maxRate)
		if copied {
			scratch = sel // entriesMessage does not keep sel: reuse it
		}
		if skipped > 0 {
			for v := range g.viewers {
				v.mu.Lock()
				v.sampled += int64(skipped)
				// Matching entries were skipped: the next delivered
				// message starts a new range (a batch skipped whole
				// sends nothing that would say so).
				v.brkNext = true
				v.mu.Unlock()
			}
		}
		if notice, ok := g.rate.transition(now, skipped, h.maxRate); ok {
			for v := range g.viewers {
				v.offer(notice)
			}
		}
		for len(sel) > 0 {
			n := min(len(sel), maxEntriesPerMessage)
			m := entriesMessage(sel[:n])
			m.sampled = skipped > 0
			sel = sel[n:]
			if h.cfg.ChainedDigest && len(g.viewers) > 1 {
				sum := sha256.Sum256(m.Data)
				m.sum = &sum
			}
			for v := range g.viewers {
				v.offer(m)
			}
		}
	}
}

// selectLocked returns the entries of batch the group receives: those that
// match its filter and pass the rate sampler. When all pass it returns batch
// itself (copied is false); otherwise it appends them to buf[:0].
func (g *group) selectLocked(batch, buf []Entry, now time.Time, limit int) (sel []Entry, copied bool, skipped int) {
	all := g.matcher.MatchAll() || g.matcher.matchesAllOf(batch)
	g.rate.refill(now, limit)
	if all && g.rate.tokens >= float64(len(batch)) {
		g.rate.tokens -= float64(len(batch)) // the hot path: no copy
		return batch, false, 0
	}
	buf = buf[:0]
	for i := range batch {
		if all || g.matcher.Match(&batch[i]) {
			buf = append(buf, batch[i])
		}
	}
	n := len(buf)
	keep := min(n, int(g.rate.tokens))
	if keep < n {
		// Over the cap: keep entries spread evenly over the batch rather
		// than its first ones. Index j*n/keep grows with j, so compacting
		// in place is safe.
		for j := range keep {
			buf[j] = buf[j*n/keep]
		}
		clear(buf[keep:n])
	}
	g.rate.take(now, keep, n-keep)
	if keep == len(batch) {
		return batch, false, 0
	}
	return buf[:keep], true, n - keep
}

// entriesMessage encodes a batch once; the result is shared by a group.
func entriesMessage(sel []Entry) Message {
	data, sums := encodeEntriesSums(sel, true)
	return newEntriesMessage(sel, data, sums)
}

// backfillMessage encodes a backfill page into scratch (grown as needed and
// returned for reuse) and keeps an exact-size copy: a page may wait long for
// a slow viewer, and every resuming viewer holds one, so it should not carry
// the encoder's spare capacity (about as much again).
func backfillMessage(sel []Entry, scratch []byte) (Message, []byte) {
	scratch, sums := appendEntriesSums(scratch[:0], sel, true)
	return newEntriesMessage(sel, bytes.Clone(scratch), sums), scratch
}

func newEntriesMessage(sel []Entry, data, sums []byte) Message {
	var red map[string]int
	for i := range sel {
		for k, n := range sel[i].Redactions {
			if red == nil {
				red = make(map[string]int)
			}
			red[k] += n
		}
	}
	return Message{
		Type: TypeEntries, Data: data, Entries: len(sel), Bytes: len(data),
		FirstSeq: sel[0].Seq, LastSeq: sel[len(sel)-1].Seq, redactions: red, sums: sums,
	}
}

// sampler caps the entries per second a group receives with a token
// bucket: it refills at limit tokens per second and holds at most limit (one
// second's worth), so a rate under the cap is never sampled however it is
// batched, and a rate over it gets limit entries per second. It starts full.
type sampler struct {
	tokens   float64
	last     time.Time // when tokens was last refilled; zero before the first entry
	sampling bool      // a "sampling" notice was sent and not yet ended
	skipped  int64     // entries skipped in the current sampling episode
	// lastSkip is when an entry was last skipped. Sampling ends only after
	// a second without one: over the cap, a batch after a pause fits in
	// the refilled bucket, which is not the rate falling under the cap.
	lastSkip time.Time
}

// refill adds the tokens earned since the last call.
func (s *sampler) refill(now time.Time, limit int) {
	switch d := now.Sub(s.last); {
	case s.last.IsZero():
		s.tokens = float64(limit)
	case d > 0:
		s.tokens = min(float64(limit), s.tokens+d.Seconds()*float64(limit))
	}
	if !now.Before(s.last) {
		s.last = now // a clock step back keeps the bucket as it is
	}
}

// take spends kept tokens and counts skipped entries.
func (s *sampler) take(now time.Time, kept, skipped int) {
	s.tokens -= float64(kept)
	if skipped > 0 {
		s.skipped += int64(skipped)
		s.lastSkip = now
	}
}

// transition reports the notice to send after a batch, if sampling starts
// or ends (after a second with nothing skipped).
func (s *sampler) transition(now time.Time, skipped, limit int) (Message, bool) {
	switch {
	case skipped > 0 && !s.sampling:
		s.sampling = true
		return s.notice(limit), true
	case skipped == 0 && s.sampling && now.Sub(s.lastSkip) >= time.Second:
		s.sampling = false
		text := fmt.Sprintf("rate back under %d entries/s: delivering every entry again (%d entries were skipped while sampling)", limit, s.skipped)
		s.skipped = 0
		data := encodeNotice("sampling_end", text)
		return Message{Type: TypeNotice, Data: data, Bytes: len(data)}, true
	}
	return Message{}, false
}

func (s *sampler) notice(limit int) Message {
	text := fmt.Sprintf("more than %d entries/s match this filter: delivering a sample of at most %d entries/s", limit, limit)
	data := encodeNotice("sampling", text)
	return Message{Type: TypeNotice, Data: data, Bytes: len(data)}
}

package logs

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// SubscribeOptions say what a new viewer receives before the live entries.
// Without After, Lines and Since it receives live entries only.
type SubscribeOptions struct {
	// Filter selects the entries (live and backfill).
	Filter Filter
	// After resumes a stream: the viewer receives the kept entries with
	// seq > After, preceded by a "gap" message when some of them are no
	// longer kept. Zero means no resume. It takes precedence over Lines;
	// a non-zero Since still bounds it (the oldest entries before Since are
	// withheld and reported as a "lookback" gap).
	After int64
	// Lines backfills the last Lines matching entries (at most those kept).
	Lines int
	// Since backfills the matching entries whose Time is at or after Since;
	// with Lines, the last Lines of those. The gateway caps it by policy.
	Since time.Time
}

// Subscribe registers a viewer of stream. The backfill entries are selected
// and the viewer registered under the stream lock, so every entry is
// delivered exactly once: either in the backfill or live (unless dropped,
// which is reported). The backfill is encoded after the lock is released.
// Filter errors wrap ErrInvalidFilter; ErrHubClosed after Close.
func (h *Hub) Subscribe(s Stream, opts SubscribeOptions) (*Viewer, error) {
	m, err := opts.Filter.Compile()
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", s, err)
	}
	if opts.After < 0 || opts.Lines < 0 {
		return nil, fmt.Errorf("subscribe to %s: negative After or Lines", s)
	}
	st, err := h.lockStream(context.Background(), s)
	if err != nil {
		return nil, fmt.Errorf("subscribe to %s: %w", s, err)
	}
	if h.closed.Load() {
		st.mu.Unlock()
		return nil, fmt.Errorf("subscribe to %s: %w", s, ErrHubClosed)
	}
	v := newViewer(h, st)
	st.ring.trim(st.ret, h.now().Add(-st.ret.MaxAge))
	msgs, sel := backfillLocked(st, m, opts)
	// The backfill is its own filter epoch (with the Since bound it was
	// selected under, when it counted back rather than resumed); the live
	// entries that follow start the next.
	v.epochs = []ReplayEpoch{{Filter: opts.Filter}}
	if len(sel) > 0 {
		bf := ReplayEpoch{Filter: opts.Filter, Backfill: true}
		if opts.After == 0 {
			bf.Since = opts.Since
		}
		v.epochs = []ReplayEpoch{bf, {Filter: opts.Filter}}
		v.epoch = 1
	}
	v.epochBytes = len(v.epochs) * filterSize(opts.Filter)
	// Registered now: live entries from here on are queued for v, after
	// the backfill selected above.
	st.joinLocked(v, m)
	h.wg.Add(1) // under st.mu, so Close (which ends v) cannot miss it
	st.mu.Unlock()

	// Encoding the backfill is the slow part; the pump does it a page at a
	// time as it sends (sel is a copy, so no lock is needed), ahead of the
	// live messages queued meanwhile (those count against QueueSize; the
	// backfill, bounded by the ring, does not).
	v.pre, v.backfill = msgs, sel
	go v.pump()
	return v, nil
}

// backfillLocked selects what a new viewer receives before live entries: a
// gap message, if any, and copies of the backfill entries.
func backfillLocked(st *stream, m *Matcher, opts SubscribeOptions) (msgs []Message, sel []Entry) {
	kept := st.ring.entries()
	switch {
	case opts.After > 0:
		after := opts.After
		if after > st.lastSeq {
			// The cursor is from entries this hub no longer has (it lost
			// them in a crash before they reached the backlog).
			data := encodeGap(st.lastSeq+1, after, "cursor_ahead")
			msgs = append(msgs, Message{Type: TypeGap, Data: data, Bytes: len(data), FirstSeq: st.lastSeq + 1, LastSeq: after})
			break
		}
		oldest := st.lastSeq + 1 // oldest seq still available
		if len(kept) > 0 {
			oldest = kept[0].Seq
		}
		if after+1 < oldest {
			data := encodeGap(after+1, oldest-1, "retention")
			msgs = append(msgs, Message{Type: TypeGap, Data: data, Bytes: len(data), FirstSeq: after + 1, LastSeq: oldest - 1})
		}
		// Since (the policy's lookback) still bounds a resume: the oldest
		// kept entries before it are withheld, up to the first one inside
		// the window, and reported as a gap.
		resumed := st.ring.after(after)
		skip := 0
		for !opts.Since.IsZero() && skip < len(resumed) && resumed[skip].Time.Before(opts.Since) {
			skip++
		}
		if skip > 0 {
			from, to := resumed[0].Seq, resumed[skip-1].Seq
			data := encodeGap(from, to, "lookback")
			msgs = append(msgs, Message{Type: TypeGap, Data: data, Bytes: len(data), FirstSeq: from, LastSeq: to})
		}
		for _, e := range resumed[skip:] {
			if m.Match(&e) {
				sel = append(sel, e)
			}
		}
	case opts.Lines > 0 || !opts.Since.IsZero():
		// Newest first until Lines are found, then restore seq order.
		for i := len(kept) - 1; i >= 0; i-- {
			e := &kept[i]
			if opts.Lines > 0 && len(sel) == opts.Lines {
				break
			}
			if (opts.Since.IsZero() || !e.Time.Before(opts.Since)) && m.Match(e) {
				sel = append(sel, *e)
			}
		}
		slices.Reverse(sel)
	}
	return msgs, sel
}

package logs

import (
	"context"
	"fmt"
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

// Subscribe registers a viewer of stream. The backfill's bounds are chosen
// and the viewer registered under the stream lock, so every entry is
// delivered exactly once: either in the backfill or live (unless dropped,
// which is reported). The backfill is read from the ring and encoded a page
// at a time after the lock is released (see backfill); entries the ring
// drops before their page is read are announced as a "gap".
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
	msgs, bf := backfillLocked(st, m, opts)
	// The backfill is its own filter epoch (with the Since bound it was
	// selected under, when it counted back rather than resumed); the live
	// entries that follow start the next.
	v.epochs = []ReplayEpoch{{Filter: opts.Filter}}
	if bf != nil {
		ep := ReplayEpoch{Filter: opts.Filter, Backfill: true}
		if opts.After == 0 {
			ep.Since = opts.Since
		}
		v.epochs = []ReplayEpoch{ep, {Filter: opts.Filter}}
		v.epoch = 1
	}
	v.epochBytes = len(v.epochs) * filterSize(opts.Filter)
	// Registered now: live entries from here on are queued for v, after
	// the backfill bounded above.
	st.joinLocked(v, m)
	h.wg.Add(1) // under st.mu, so Close (which ends v) cannot miss it
	st.mu.Unlock()

	// Reading and encoding the backfill is the slow part; the pump does it
	// a page at a time as it sends, ahead of the live messages queued
	// meanwhile (those count against QueueSize; the backfill does not).
	v.pre, v.bf = msgs, bf
	go v.pump()
	return v, nil
}

// backfillPage is the number of entries of a backfill "entries" message.
// It is smaller than maxEntriesPerMessage because each viewer in a mass
// resume holds up to two encoded pages (one being written to its socket,
// the next waiting for it) while live messages are shared: with 200
// resuming viewers, 500-entry pages kept ~35 MB more live heap (and about
// twice that in RSS, through the GC's headroom) than 100-entry ones.
const backfillPage = 100

// backfill is what a viewer still has to receive before its live entries:
// the entries with next <= seq <= upto that sel selects. It holds no entries;
// the pump reads them from the ring a page at a time (readPage), so a mass
// resume holds at most one page per encoder rather than every viewer's
// whole backfill. Only the pump uses it.
type backfill struct {
	m     *Matcher
	since time.Time // when non-zero, entries with an earlier Time are not selected
	next  int64     // seq of the next entry to consider
	upto  int64     // seq of the last entry of the backfill (the stream's last at subscribe)
	// brk is set when a gap was announced since the last page: the next
	// page must not extend the delivered range across it.
	brk bool
}

func (b *backfill) selects(e *Entry) bool {
	return (b.since.IsZero() || !e.Time.Before(b.since)) && b.m.Match(e)
}

// backfillLocked chooses what a new viewer receives before live entries:
// gap messages, if any, and the bounds of the backfill (nil when nothing
// kept is selected). It scans the ring but copies no entry.
func backfillLocked(st *stream, m *Matcher, opts SubscribeOptions) (msgs []Message, bf *backfill) {
	kept := st.ring.entries()
	bf = &backfill{m: m, upto: st.lastSeq}
	switch {
	case opts.After > 0:
		after := opts.After
		if after > st.lastSeq {
			// The cursor is from entries this hub no longer has (it lost
			// them in a crash before they reached the backlog).
			data := encodeGap(st.lastSeq+1, after, "cursor_ahead")
			msgs = append(msgs, Message{Type: TypeGap, Data: data, Bytes: len(data), FirstSeq: st.lastSeq + 1, LastSeq: after})
			return msgs, nil
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
		for i := skip; i < len(resumed); i++ {
			if m.Match(&resumed[i]) {
				bf.next = resumed[i].Seq
				return msgs, bf
			}
		}
		return msgs, nil
	case opts.Lines > 0:
		// Newest first until Lines are found: the backfill starts there.
		bf.since = opts.Since
		found := 0
		for i := len(kept) - 1; i >= 0 && found < opts.Lines; i-- {
			if bf.selects(&kept[i]) {
				found++
				bf.next = kept[i].Seq
			}
		}
		if found == 0 {
			return msgs, nil
		}
		return msgs, bf
	case !opts.Since.IsZero():
		bf.since = opts.Since
		for i := range kept {
			if bf.selects(&kept[i]) {
				bf.next = kept[i].Seq
				return msgs, bf
			}
		}
		return msgs, nil
	}
	return msgs, nil
}

// readPage appends to page (up to backfillPage) the next selected
// entries of the backfill, read from the ring under the stream lock, and
// advances the backfill past them. Entries of the backfill the ring no
// longer holds (dropped by retention since Subscribe) are skipped and
// returned as a "gap" message to send before the page; so nothing is
// skipped silently or sent twice, and seq order holds. done reports that
// the backfill is complete.
func (b *backfill) readPage(st *stream, page []Entry) (gap *Message, out []Entry, done bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := int64(st.ring.len())
	first := st.ring.first()
	if n == 0 || first > b.next || first+n-1 < b.next {
		to := b.upto
		if n > 0 && first > b.next {
			to = min(to, first-1)
		}
		data := encodeGap(b.next, to, "retention")
		gap = &Message{Type: TypeGap, Data: data, Bytes: len(data), FirstSeq: b.next, LastSeq: to}
		b.next = to + 1
		b.brk = true
	}
	if b.next > b.upto {
		return gap, page, true
	}
	es := st.ring.after(b.next - 1) // es[0].Seq == b.next: the ring is gapless
	for i := range es {
		e := &es[i]
		if e.Seq > b.upto {
			break
		}
		b.next = e.Seq + 1
		if b.selects(e) {
			page = append(page, *e)
			if len(page) == backfillPage {
				break
			}
		}
	}
	return gap, page, b.next > b.upto
}

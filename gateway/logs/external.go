package logs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Sequencer assigns sequence numbers outside the hub, for several replicas
// sharing one feed (see HubConfig.Sequencer). Publish stores the entries,
// sets their Seq (and keeps Observed) and returns them; it must not hand
// them to this hub: the feed's reader does that with PublishAssigned, so
// every replica delivers the same entries with the same seqs.
type Sequencer interface {
	Publish(ctx context.Context, entries []Entry) ([]Entry, error)
}

// ErrUnsequenced reports an entry given to PublishAssigned without a Seq.
var ErrUnsequenced = errors.New("entry has no seq")

// PublishAssigned delivers entries whose Seq is already set (by a shared
// Sequencer) to the ring, the backlog and the viewers. Per stream, entries
// must come in increasing seq order; an entry at or below the stream's last
// seq is a duplicate and is skipped. When seqs jump (this replica missed
// entries: they were trimmed before it read them), the ring restarts at the
// new seq, so it stays gapless, and the viewers receive a "gap" message
// with reason "retention" before the entries.
//
// It returns the number of entries delivered.
func (h *Hub) PublishAssigned(ctx context.Context, entries []Entry) (int, error) {
	now := h.now()
	var order []Stream
	idx := make(map[Stream][]Entry)
	for i := range entries {
		e := entries[i]
		if e.Service == "" {
			return 0, fmt.Errorf("publish assigned log entries: entry %d has no service", i)
		}
		if e.Seq <= 0 {
			return 0, fmt.Errorf("publish assigned log entries: entry %d: %w", i, ErrUnsequenced)
		}
		if e.Observed.IsZero() {
			e.Observed = now
		}
		s := e.Stream()
		if _, ok := idx[s]; !ok {
			order = append(order, s)
		}
		idx[s] = append(idx[s], e)
	}
	n := 0
	for _, s := range order {
		k, err := h.publishAssignedStream(ctx, s, idx[s], now)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (h *Hub) publishAssignedStream(ctx context.Context, key Stream, in []Entry, now time.Time) (int, error) {
	st, err := h.lockStream(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("publish assigned log entries: %w", err)
	}
	if h.closed.Load() {
		st.mu.Unlock()
		return 0, fmt.Errorf("publish assigned log entries: %w", ErrHubClosed)
	}
	batch := in[:0:0]
	flush := func() {
		if len(batch) == 0 {
			return
		}
		st.ring.trim(st.ret, now.Add(-st.ret.MaxAge))
		st.fanoutLocked(h, batch, now)
		if h.writer != nil {
			h.writer.enqueue(slices.Clone(batch))
		}
		batch = batch[len(batch):]
	}
	n := 0
	for _, e := range in {
		if e.Seq <= st.lastSeq {
			continue // already delivered (overlap after a restore or a reconnect)
		}
		if e.Seq > st.lastSeq+1 && st.lastSeq > 0 {
			// Missed entries: deliver what came before, then say so.
			flush()
			from, to := st.lastSeq+1, e.Seq-1
			st.ring = ring{}
			data := encodeGap(from, to, "retention")
			m := Message{Type: TypeGap, Data: data, Bytes: len(data), FirstSeq: from, LastSeq: to}
			for _, g := range st.groups {
				for v := range g.viewers {
					v.offer(m)
				}
			}
		} else if e.Seq > st.lastSeq+1 {
			st.ring = ring{} // first entries this hub sees start later than 1
		}
		st.lastSeq = e.Seq
		st.ring.push(e)
		batch = append(batch, e)
		n++
	}
	flush()
	st.mu.Unlock()
	if h.writer != nil {
		if err := h.writer.waitRoom(ctx); err != nil {
			return n, fmt.Errorf("publish assigned log entries: backlog: %w", err)
		}
	}
	return n, nil
}

// EndViewers ends every current viewer with err (the gateway ends their
// tails with "backend unavailable" unless err is ErrSlow or ErrHubClosed),
// leaving the hub open for new viewers. It returns how many were ended.
// Used when the shared feed is lost, so no viewer waits on a silent stream.
func (h *Hub) EndViewers(err error) int {
	h.mu.Lock()
	sts := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		sts = append(sts, st)
	}
	h.mu.Unlock()
	n := 0
	for _, st := range sts {
		st.mu.Lock()
		for _, g := range st.groups {
			for v := range g.viewers {
				v.mu.Lock()
				v.endLocked(err)
				v.mu.Unlock()
				v.group = nil
				n++
			}
		}
		st.groups = nil
		st.viewers = 0
		st.mu.Unlock()
	}
	return n
}

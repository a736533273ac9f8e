package logs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"maps"
	"slices"
	"sync"
	"time"
)

var (
	// ErrSlow ends a viewer whose queue stayed full for SlowTimeout.
	ErrSlow = errors.New("viewer too slow")
	// ErrHubClosed ends every viewer when the hub shuts down, and is
	// returned by Publish and Subscribe after Close.
	ErrHubClosed = errors.New("log hub closed")
	// ErrViewerClosed is returned by SetFilter on an ended viewer.
	ErrViewerClosed = errors.New("viewer closed")
)

// Message types.
const (
	TypeEntries = "entries"
	TypeDropped = "dropped"
	TypeGap     = "gap"
	TypeNotice  = "notice"
)

// Message is one WebSocket message for a viewer. Data is shared between all
// viewers that receive the same batch: never modify it.
type Message struct {
	// Type is one of the Type* constants.
	Type string
	// Data is the complete JSON text of the message.
	Data []byte
	// Entries is the number of entries in an "entries" message.
	Entries int
	// Bytes is len(Data).
	Bytes int
	// FirstSeq and LastSeq are the seq range the message covers ("entries",
	// "dropped" and "gap"); zero for notices.
	FirstSeq, LastSeq int64

	// redactions sums Entry.Redactions over the entries; shared, read-only.
	redactions map[string]int
	// sum is SHA-256(Data), computed once per shared message when the hub
	// uses chained digests.
	sum *[sha256.Size]byte
	// sums holds the SHA-256 of each entry's JSON, concatenated, for the
	// entries digest; shared, read-only, computed once per message.
	sums []byte
	// sampled is set on an "entries" message of a batch the rate cap thinned.
	sampled bool
	// epoch and brk are per viewer (Message is copied into each queue):
	// the filter epoch the message was selected under, and whether entries
	// the viewer's filter matched were skipped (dropped, paused) since the
	// previous message it queued.
	epoch int32
	brk   bool
}

// ViewerStats are the counters of one viewer, for the view-close audit event.
type ViewerStats struct {
	// Messages, Entries and Bytes count what was delivered to the channel.
	Messages int64
	Entries  int64
	Bytes    int64
	// Dropped counts entries not delivered because the queue was full.
	Dropped int64
	// Sampled counts entries not delivered because of the rate cap.
	Sampled int64
	// Paused counts entries not delivered because the viewer was paused.
	Paused int64
	// Redactions sums Entry.Redactions over the delivered entries.
	Redactions map[string]int64
	// EntriesDigest is the hex SHA-256 over the SHA-256 of each delivered
	// entry's JSON (as it appears in the frames), in delivery order. Unlike
	// Digest it does not depend on how entries were split into messages,
	// so a replay from the backlog can recompute it (see Replay).
	EntriesDigest string
	// Record says which entries were delivered, compactly: what Replay
	// needs to rebuild them from the backlog.
	Record ViewRecord
	// Digest is the hex SHA-256 of the concatenated Data of every delivered
	// message, in order. With HubConfig.ChainedDigest it is instead the
	// chain d = SHA-256(d || SHA-256(Data)) over the delivered messages,
	// starting from 32 zero bytes.
	Digest string
}

// Viewer is one subscriber of a stream. Its messages come from Messages();
// the channel is closed when the viewer ends (Close, ErrSlow, hub Close).
type Viewer struct {
	hub *Hub
	st  *stream

	// group is the filter group the viewer belongs to; guarded by st.mu.
	group *group

	out  chan Message  // unbuffered; only the pump sends, and closes it
	wake chan struct{} // capacity 1; signals the pump that queue grew
	done chan struct{} // closed when the viewer ends (under mu)
	// finished is closed by the pump after its last delivery was counted,
	// just before it closes out.
	finished chan struct{}

	// pre and bf are owned by the pump once it starts: the messages to
	// send before anything queued (the gaps a new viewer gets first, then a
	// backfill page and the gap before it), and the rest of the backfill,
	// read from the ring and encoded a page at a time (under the hub's
	// backfill limit) as they are sent, so a mass resume holds neither
	// every viewer's whole backfill encoded nor a copy of it.
	pre []Message
	bf  *backfill

	mu sync.Mutex // guards the fields below
	// queue holds messages not yet handed to the pump; queue[head:] are live.
	queue []Message
	head  int
	ended bool
	err   error
	// Pending drop report: entries dropped since the last "dropped" message.
	dropCount, dropFrom, dropTo int64
	// full is set while the queue is at QueueSize; progressAt is when the
	// pump last took a message (or the queue became full). The slow timer
	// is armed while full and ends the viewer when progressAt is older
	// than SlowTimeout.
	full       bool
	progressAt time.Time
	slowTimer  *time.Timer
	timerArmed bool
	dropped    int64 // entries dropped while the queue was full
	sampled    int64 // entries skipped by the rate sampler

	// What a replay needs, guarded by mu: the filter epochs (a new one on
	// every SetFilter), the current one, whether matching entries were
	// skipped since the last queued message, the pause state and the
	// skipped ranges (drops, pauses).
	epochs     []ReplayEpoch
	epochBytes int   // filterSize of the epochs, at most maxRecordEpochBytes
	epoch      int32 // index in epochs; -1 when the filter is not recorded
	brkNext    bool
	paused     bool
	pausedN    int64     // entries skipped while paused (skips may be capped)
	pause      SkipRange // the skip of the current pause, while Entries > 0
	skips      []SkipRange

	// statsMu guards the delivery counters, written by the pump after each
	// hand-off. It is separate from mu so that hashing never delays offer
	// (and so Publish). Order: mu -> statsMu.
	statsMu   sync.Mutex
	delivered ViewerStats // Messages, Entries, Bytes only
	redacted  map[string]int64
	digest    hash.Hash         // concatenation digest (nil when chained)
	chain     [sha256.Size]byte // chained digest
	entries   hash.Hash         // entries digest, over Message.sums
	ranges    []SeqRange        // delivered ranges, at most maxRecordRanges
	truncated bool              // ranges overflowed
}

func newViewer(h *Hub, st *stream) *Viewer {
	v := &Viewer{
		hub:      h,
		st:       st,
		out:      make(chan Message),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		entries:  sha256.New(),
	}
	if !h.cfg.ChainedDigest {
		v.digest = sha256.New()
	}
	return v
}

// Messages returns the channel of messages. It is closed when the viewer
// ends; then Err says why.
func (v *Viewer) Messages() <-chan Message { return v.out }

// Done is closed when the viewer ends.
func (v *Viewer) Done() <-chan struct{} { return v.done }

// Err returns why the viewer ended: ErrSlow, ErrHubClosed, or nil (still
// running, or ended by Close).
func (v *Viewer) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.err
}

// Stream returns the stream the viewer follows.
func (v *Viewer) Stream() Stream { return v.st.key }

// Close ends the viewer, unregisters it and waits for its pump to stop, so
// Stats is final when Close returns. It is idempotent.
func (v *Viewer) Close() {
	v.end(nil)
	<-v.finished
}

// SetFilter replaces the viewer's filter. Entries published after it returns
// are filtered by f; messages already queued are delivered unchanged.
func (v *Viewer) SetFilter(f Filter) error {
	m, err := f.Compile()
	if err != nil {
		return err
	}
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	v.mu.Lock()
	ended := v.ended
	v.mu.Unlock()
	if ended {
		return ErrViewerClosed
	}
	v.st.leaveLocked(v)
	v.st.joinLocked(v, m)
	v.mu.Lock()
	if n := filterSize(f); len(v.epochs) < maxRecordEpochs && v.epochBytes+n <= maxRecordEpochBytes {
		v.epochs = append(v.epochs, ReplayEpoch{Filter: f})
		v.epoch = int32(len(v.epochs) - 1)
		v.epochBytes += n
	} else {
		v.epoch = -1 // not recorded: what it delivers truncates the record
	}
	v.mu.Unlock()
	return nil
}

// filterSize estimates the bytes f takes in a ViewRecord's JSON.
func filterSize(f Filter) int {
	n := 64 + len(f.MinLevel) + len(f.Grep) + len(f.Exclude)
	for k, val := range f.Attrs {
		n += 6 + len(k) + len(val)
	}
	return n
}

// SetPaused pauses or resumes the viewer. While paused, entries are not
// queued (counted in ViewerStats.Paused and recorded as a skipped range);
// notices still are. Messages already queued are delivered.
func (v *Viewer) SetPaused(paused bool) error {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ended {
		return ErrViewerClosed
	}
	if v.paused == paused {
		return nil
	}
	v.paused = paused
	if !paused && v.pause.Entries > 0 {
		v.addSkipLocked(v.pause)
		v.pause = SkipRange{}
	}
	return nil
}

// addSkipLocked records a skipped range, up to maxRecordRanges.
func (v *Viewer) addSkipLocked(r SkipRange) {
	if len(v.skips) < maxRecordRanges {
		v.skips = append(v.skips, r)
	}
}

// Stats returns a snapshot of the viewer's counters. A message is counted
// just after the consumer received it; once the viewer has ended and
// Messages() is closed (or Close has returned), Stats is final.
func (v *Viewer) Stats() ViewerStats {
	v.mu.Lock()
	dropped, sampled := v.dropped, v.sampled
	rec := ViewRecord{Epochs: slices.Clone(v.epochs), Skips: slices.Clone(v.skips)}
	paused := v.pausedN
	if v.pause.Entries > 0 {
		rec.Skips = append(rec.Skips, v.pause)
	}
	if v.dropCount > 0 {
		rec.Skips = append(rec.Skips, SkipRange{Reason: SkipSlowClient, From: v.dropFrom, To: v.dropTo, Entries: v.dropCount})
	}
	v.mu.Unlock()
	v.statsMu.Lock()
	s := v.delivered
	s.Dropped, s.Sampled, s.Paused = dropped, sampled, paused
	rec.Ranges, rec.Truncated = slices.Clone(v.ranges), v.truncated
	s.Record = rec
	s.EntriesDigest = hex.EncodeToString(v.entries.Sum(nil))
	s.Redactions = maps.Clone(v.redacted)
	if v.digest != nil {
		s.Digest = hex.EncodeToString(v.digest.Sum(nil))
	} else {
		s.Digest = hex.EncodeToString(v.chain[:])
	}
	v.statsMu.Unlock()
	// A filter change between the two locks adds an epoch that a range
	// taken above may already use: epochs only grow, so take them again.
	for _, rg := range rec.Ranges {
		if rg.Epoch >= len(rec.Epochs) {
			v.mu.Lock()
			s.Record.Epochs = slices.Clone(v.epochs)
			v.mu.Unlock()
			break
		}
	}
	return s
}

// end unregisters the viewer and ends it with err.
func (v *Viewer) end(err error) {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	v.st.leaveLocked(v)
	v.mu.Lock()
	v.endLocked(err)
	v.mu.Unlock()
}

// endLocked marks the viewer ended; the pump then exits and closes the
// channel. Callers hold v.mu (and st.mu, having unregistered the viewer).
func (v *Viewer) endLocked(err error) {
	if v.ended {
		return
	}
	v.ended = true
	v.err = err
	if v.slowTimer != nil {
		v.slowTimer.Stop()
		v.timerArmed = false
	}
	clear(v.queue)
	v.queue, v.head = nil, 0
	close(v.done)
}

func (v *Viewer) qlen() int { return len(v.queue) - v.head }

// pushLocked appends m to the queue and wakes the pump.
func (v *Viewer) pushLocked(m Message) {
	v.queue = append(v.queue, m)
	if v.qlen() >= v.hub.queueSize {
		v.markFullLocked()
	}
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// markFullLocked starts a full episode and arms the slow timer.
func (v *Viewer) markFullLocked() {
	if v.full {
		return
	}
	v.full = true
	v.progressAt = time.Now()
	if v.timerArmed {
		return
	}
	v.timerArmed = true
	if v.slowTimer == nil {
		v.slowTimer = time.AfterFunc(v.hub.slowTimeout, v.slowCheck)
	} else {
		v.slowTimer.Reset(v.hub.slowTimeout)
	}
}

// flushDropLocked queues the pending drop report, if any.
func (v *Viewer) flushDropLocked() {
	if v.dropCount == 0 {
		return
	}
	v.addSkipLocked(SkipRange{Reason: SkipSlowClient, From: v.dropFrom, To: v.dropTo, Entries: v.dropCount})
	data := encodeDropped(v.dropCount, v.dropFrom, v.dropTo, "slow_client")
	v.pushLocked(Message{Type: TypeDropped, Data: data, Bytes: len(data), FirstSeq: v.dropFrom, LastSeq: v.dropTo})
	v.dropCount, v.dropFrom, v.dropTo = 0, 0, 0
}

// offer queues m without blocking. "entries" messages are dropped (and
// counted) while the queue is full; control messages are always queued, so
// their number is bounded by the rate of state changes, not of entries.
// Callers hold st.mu.
func (v *Viewer) offer(m Message) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ended {
		return
	}
	if m.Type == TypeEntries && v.paused {
		if v.pause.Entries == 0 {
			v.pause = SkipRange{Reason: SkipPaused, From: m.FirstSeq}
		}
		v.pause.To = m.LastSeq
		v.pause.Entries += int64(m.Entries)
		v.pausedN += int64(m.Entries)
		v.brkNext = true
		return
	}
	if m.Type == TypeEntries && v.qlen() >= v.hub.queueSize {
		if v.dropCount == 0 {
			v.dropFrom = m.FirstSeq
		}
		v.dropCount += int64(m.Entries)
		v.dropTo = m.LastSeq
		v.dropped += int64(m.Entries)
		v.brkNext = true
		v.markFullLocked()
		return
	}
	v.flushDropLocked()
	if m.Type == TypeGap {
		// Seqs the viewer never got (this replica missed them): a range
		// must not span them, as a replay elsewhere may have them.
		v.brkNext = true
	}
	if m.Type == TypeEntries {
		m.epoch, m.brk = v.epoch, v.brkNext
		v.brkNext = false
	}
	v.pushLocked(m)
}

// slowCheck runs on the slow timer: it ends the viewer if the queue has
// been full without progress for SlowTimeout, else re-arms for the rest.
func (v *Viewer) slowCheck() {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	v.timerArmed = false
	if v.ended || !v.full {
		return
	}
	if wait := v.hub.slowTimeout - time.Since(v.progressAt); wait > 0 {
		v.timerArmed = true
		v.slowTimer.Reset(wait)
		return
	}
	v.st.leaveLocked(v)
	v.endLocked(ErrSlow)
	v.hub.log.Info("log viewer closed: too slow", "stream", v.st.key.String(),
		"dropped", v.dropped, "slow_timeout", v.hub.slowTimeout)
}

// pop takes the next message for the pump. Popping makes room, which ends a
// full episode and lets the pending drop report in.
func (v *Viewer) pop() (Message, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ended || v.qlen() == 0 {
		return Message{}, false
	}
	m := v.queue[v.head]
	v.queue[v.head] = Message{}
	v.head++
	if v.head == len(v.queue) {
		v.queue, v.head = v.queue[:0], 0
		if cap(v.queue) > 4*v.hub.queueSize {
			v.queue = nil // let a backfill-sized array go
		}
	}
	if v.full {
		// Progress: the slow timer counts from here. With room again the
		// episode ends and the drop report goes in.
		v.progressAt = time.Now()
		if v.qlen() < v.hub.queueSize {
			v.full = false
			v.flushDropLocked()
		}
	}
	return m, true
}

// pump hands queued messages to the channel, one at a time, so that no lock
// is held while the consumer is slow. It exits when the viewer ends.
func (v *Viewer) pump() {
	defer v.hub.wg.Done()
	defer close(v.out)
	defer close(v.finished)
	for {
		m, ok := v.nextPre()
		if !ok {
			m, ok = v.pop()
		}
		if !ok {
			select {
			case <-v.wake:
				continue
			case <-v.done:
				return
			}
		}
		select {
		case v.out <- m:
			v.count(&m)
		case <-v.done:
			return
		}
	}
}

// nextPre returns the viewer's next gap or backfill page, if any; a page is
// read from the ring and encoded only when the pump is about to send it,
// while holding one of the hub's backfill slots.
func (v *Viewer) nextPre() (Message, bool) {
	for {
		if len(v.pre) > 0 {
			m := v.pre[0]
			v.pre[0] = Message{}
			v.pre = v.pre[1:]
			if len(v.pre) == 0 {
				v.pre = nil
			}
			return m, true
		}
		if v.bf == nil {
			return Message{}, false
		}
		if !v.hub.acquireBackfill(v.done) {
			return Message{}, false
		}
		buf := v.hub.getPage()
		gap, page, done := v.bf.readPage(v.st, buf.entries[:0])
		if gap != nil {
			v.pre = append(v.pre, *gap)
		}
		if len(page) > 0 {
			var m Message
			m, buf.data = backfillMessage(page, buf.data) // epoch 0: the backfill
			m.brk, v.bf.brk = v.bf.brk, false
			v.pre = append(v.pre, m)
		}
		buf.entries = page
		v.hub.putPage(buf)
		v.hub.releaseBackfill()
		if done {
			v.bf = nil
		}
	}
}

// count adds a delivered message to the stats; only the pump calls it.
func (v *Viewer) count(m *Message) {
	v.statsMu.Lock()
	defer v.statsMu.Unlock()
	v.delivered.Messages++
	v.delivered.Entries += int64(m.Entries)
	v.delivered.Bytes += int64(len(m.Data))
	if v.digest != nil {
		v.digest.Write(m.Data)
	} else {
		sum := m.sum
		if sum == nil {
			s := sha256.Sum256(m.Data)
			sum = &s
		}
		var buf [2 * sha256.Size]byte
		copy(buf[:], v.chain[:])
		copy(buf[sha256.Size:], sum[:])
		v.chain = sha256.Sum256(buf[:])
	}
	if m.Type == TypeEntries && m.Entries > 0 {
		v.entries.Write(m.sums)
		v.recordLocked(m)
	}
	if len(m.redactions) > 0 && v.redacted == nil {
		v.redacted = make(map[string]int64, len(m.redactions))
	}
	for k, n := range m.redactions {
		v.redacted[k] += int64(n)
	}
}

// recordLocked extends the delivered ranges with an "entries" message: the
// last range grows when nothing the filter matched was skipped in between
// (same epoch, no drop or pause, no sampling); otherwise a range starts.
// Callers hold statsMu.
func (v *Viewer) recordLocked(m *Message) {
	if v.truncated || m.epoch < 0 {
		// What came after the last recorded range is unknown: growing
		// it now would span entries skipped in between.
		v.truncated = true
		return
	}
	if n := len(v.ranges); n > 0 {
		last := &v.ranges[n-1]
		if !m.brk && !m.sampled && !last.Sampled && last.Epoch == int(m.epoch) && m.FirstSeq > last.To {
			last.To = m.LastSeq
			return
		}
	}
	if len(v.ranges) == maxRecordRanges {
		v.truncated = true
		return
	}
	v.ranges = append(v.ranges, SeqRange{Epoch: int(m.epoch), From: m.FirstSeq, To: m.LastSeq, Sampled: m.sampled})
}

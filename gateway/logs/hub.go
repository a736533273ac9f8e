package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// HubConfig configures a Hub.
type HubConfig struct {
	// Retention per environment; key "" is the default for the others.
	// Zero fields take the defaults (10000 entries, 16 MiB, 24h).
	Retention map[string]Retention
	// QueueSize is the number of messages a viewer may have queued before
	// entries for it are dropped. If zero, 64.
	QueueSize int
	// SlowTimeout ends a viewer (ErrSlow) whose queue stays full this long,
	// measured by the runtime clock. If zero, 10s.
	SlowTimeout time.Duration
	// MaxViewerRate is the number of entries per second a viewer receives
	// before it gets a sample instead (announced by a notice). If zero, 5000.
	MaxViewerRate int
	// Backlog persists entries for restart and old resumes. If nil, the hub
	// keeps entries in memory only.
	Backlog Backlog
	// ChainedDigest makes ViewerStats.Digest a hash chain over per-message
	// hashes, each computed once per shared message, instead of a SHA-256
	// over the concatenated bytes, which every viewer computes separately
	// (the dominant fan-out cost with many viewers; see
	// BenchmarkPublishFanout). If false, the concatenation digest.
	ChainedDigest bool
	// Sequencer, when set, assigns seqs for several replicas: Publish
	// hands entries to it (after validation, with Observed set) and they
	// reach this hub's ring and viewers only through PublishAssigned, called
	// by the feed's reader. If nil, the hub assigns seqs itself.
	Sequencer Sequencer
	// MaxBackfillEncoders bounds how many viewers encode a backfill page
	// at once (a mass resume after an outage), so CPU and memory stay flat;
	// the others wait their turn. If zero, GOMAXPROCS.
	MaxBackfillEncoders int
	// Now is the clock for Observed times, ages and rates. If nil, time.Now.
	Now func() time.Time
	// Logger receives operational messages (never log content). If nil,
	// they are discarded.
	Logger *slog.Logger
}

// StreamInfo describes one known stream.
type StreamInfo struct {
	Stream Stream
	// LastSeq is the seq of the newest entry; FirstSeq of the oldest kept in
	// memory (0 when none is kept).
	LastSeq, FirstSeq int64
	Entries           int
	Bytes             int64
	Viewers           int
}

// Hub assigns sequence numbers, keeps recent entries and fans them out to
// viewers. It is safe for concurrent use.
type Hub struct {
	cfg         HubConfig
	now         func() time.Time
	log         *slog.Logger
	queueSize   int
	slowTimeout time.Duration
	maxRate     int
	writer      *backlogWriter // nil without a backlog

	closed atomic.Bool // set once, under mu; read anywhere

	backfillSem  chan struct{} // one token per backfill page being encoded
	backfillBusy atomic.Int64  // pages being encoded now
	backfillPeak atomic.Int64  // the most ever encoded at once
	backfillBufs sync.Pool     // *pageBuf: pages being read and encoded

	mu      sync.Mutex         // guards streams
	streams map[Stream]*stream // never shrinks

	wg sync.WaitGroup // viewer pumps and the backlog writer
}

// NewHub validates cfg and returns a running hub. Close it to stop.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.QueueSize < 0 || cfg.SlowTimeout < 0 || cfg.MaxViewerRate < 0 || cfg.MaxBackfillEncoders < 0 {
		return nil, errors.New("new log hub: negative QueueSize, SlowTimeout, MaxViewerRate or MaxBackfillEncoders")
	}
	for env, r := range cfg.Retention {
		if r.MaxEntries < 0 || r.MaxBytes < 0 || r.MaxAge < 0 {
			return nil, fmt.Errorf("new log hub: negative retention for env %q", env)
		}
	}
	h := &Hub{
		cfg:         cfg,
		now:         cfg.Now,
		log:         cfg.Logger,
		queueSize:   cfg.QueueSize,
		slowTimeout: cfg.SlowTimeout,
		maxRate:     cfg.MaxViewerRate,
		streams:     make(map[Stream]*stream),
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if h.queueSize == 0 {
		h.queueSize = 64
	}
	if h.slowTimeout == 0 {
		h.slowTimeout = 10 * time.Second
	}
	if h.maxRate == 0 {
		h.maxRate = 5000
	}
	enc := cfg.MaxBackfillEncoders
	if enc == 0 {
		enc = runtime.GOMAXPROCS(0)
	}
	h.backfillSem = make(chan struct{}, enc)
	if cfg.Backlog != nil {
		// Streams the backlog knows are listed (and restored on first use)
		// even before anyone publishes to them again.
		if l, ok := cfg.Backlog.(StreamLister); ok {
			ss, err := l.Streams(context.Background())
			if err != nil {
				return nil, fmt.Errorf("new log hub: %w", err)
			}
			for _, s := range ss {
				h.streams[s] = &stream{key: s, ret: h.retention(s.Env)}
			}
		}
		h.writer = newBacklogWriter(cfg.Backlog, h.log, h.now, h.retention)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			h.writer.run()
		}()
	}
	return h, nil
}

// acquireBackfill waits for a backfill slot; false if done closed first.
func (h *Hub) acquireBackfill(done <-chan struct{}) bool {
	select {
	case h.backfillSem <- struct{}{}:
	case <-done:
		return false
	}
	n := h.backfillBusy.Add(1)
	for p := h.backfillPeak.Load(); n > p && !h.backfillPeak.CompareAndSwap(p, n); p = h.backfillPeak.Load() {
	}
	return true
}

func (h *Hub) releaseBackfill() {
	h.backfillBusy.Add(-1)
	<-h.backfillSem
}

// pageBuf is the scratch space of one backfill page being read and
// encoded: the entries copied from the ring and the encoder's buffer.
type pageBuf struct {
	entries []Entry
	data    []byte
}

// getPage returns a page buffer for reading and encoding a backfill page;
// at most one per backfill slot is in use, so they are few and reused.
func (h *Hub) getPage() *pageBuf {
	if p, ok := h.backfillBufs.Get().(*pageBuf); ok {
		return p
	}
	return &pageBuf{entries: make([]Entry, 0, backfillPage)}
}

// putPage clears a page (releasing the entries' strings and maps) and
// returns it to the pool.
func (h *Hub) putPage(p *pageBuf) {
	clear(p.entries)
	p.entries = p.entries[:0]
	if cap(p.data) > 4<<20 {
		p.data = nil // a page of huge entries: do not keep its buffer
	}
	h.backfillBufs.Put(p)
}

// BackfillEncoders returns how many backfill pages are being encoded now
// and the most that ever were at once (bounded by MaxBackfillEncoders).
func (h *Hub) BackfillEncoders() (now, peak int64) {
	return h.backfillBusy.Load(), h.backfillPeak.Load()
}

// retention returns the effective retention of an environment.
func (h *Hub) retention(env string) Retention {
	r, ok := h.cfg.Retention[env]
	if !ok {
		r = h.cfg.Retention[""]
	}
	return r.withDefaults()
}

// lockStream returns the stream with its mutex held, creating it and
// restoring it from the backlog on first use.
func (h *Hub) lockStream(ctx context.Context, key Stream) (*stream, error) {
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		return nil, ErrHubClosed
	}
	st := h.streams[key]
	if st == nil {
		st = &stream{key: key, ret: h.retention(key.Env)}
		h.streams[key] = st
	}
	h.mu.Unlock()

	st.mu.Lock()
	if !st.loaded {
		if err := h.restoreLocked(ctx, st); err != nil {
			st.mu.Unlock()
			return nil, err
		}
	}
	return st, nil
}

// restoreLocked loads the stream's last seq and its retained entries from
// the backlog, so seqs continue after a restart and old cursors resume.
func (h *Hub) restoreLocked(ctx context.Context, st *stream) error {
	if h.writer == nil {
		st.loaded = true
		return nil
	}
	b := h.writer.backlog
	last, err := b.LastSeq(ctx, st.key)
	if err != nil {
		return fmt.Errorf("restore log stream %s: %w", st.key, err)
	}
	now := h.now()
	after := max(0, last-int64(st.ret.MaxEntries))
	es, err := b.Range(ctx, st.key, after, time.Time{}, st.ret.MaxEntries)
	if err != nil {
		return fmt.Errorf("restore log stream %s: %w", st.key, err)
	}
	// The ring must be gapless: keep the contiguous run that ends at last.
	i := len(es)
	for i > 0 && es[i-1].Seq == last-int64(len(es)-i) {
		i--
	}
	for _, e := range es[i:] {
		st.ring.push(e)
	}
	st.ring.trim(st.ret, now.Add(-st.ret.MaxAge))
	st.lastSeq = last
	st.loaded = true
	return nil
}

// Publish assigns each entry the next seq of its stream, keeps it in the
// ring and the backlog, and fans it out to the viewers. It never blocks on
// a viewer; it may wait (bounded by ctx) when the backlog is far behind.
//
// Publish sets Seq, and Observed when zero, in entries and returns it. With
// a Sequencer, the sequencer sets Seq and the entries reach the viewers when
// its reader calls PublishAssigned. The
// hub keeps the entries' maps: do not modify entries after Publish.
func (h *Hub) Publish(ctx context.Context, entries []Entry) ([]Entry, error) {
	if len(entries) == 0 {
		return entries, nil
	}
	now := h.now()
	single := true
	for i := range entries {
		e := &entries[i]
		if e.Service == "" {
			return nil, fmt.Errorf("publish log entries: entry %d has no service", i)
		}
		if e.Observed.IsZero() {
			e.Observed = now
		}
		if e.Service != entries[0].Service || e.Env != entries[0].Env {
			single = false
		}
	}
	if h.cfg.Sequencer != nil {
		if h.closed.Load() {
			return nil, fmt.Errorf("publish log entries: %w", ErrHubClosed)
		}
		out, err := h.cfg.Sequencer.Publish(ctx, entries)
		if err != nil {
			return nil, fmt.Errorf("publish log entries: %w", err)
		}
		return out, nil
	}
	if single {
		if err := h.publishStream(ctx, entries[0].Stream(), entries, now); err != nil {
			return nil, err
		}
		return entries, nil
	}
	// Several streams: publish each stream's entries in their order.
	var order []Stream
	idx := make(map[Stream][]int)
	for i := range entries {
		s := entries[i].Stream()
		if _, ok := idx[s]; !ok {
			order = append(order, s)
		}
		idx[s] = append(idx[s], i)
	}
	for _, s := range order {
		batch := make([]Entry, len(idx[s]))
		for j, i := range idx[s] {
			batch[j] = entries[i]
		}
		if err := h.publishStream(ctx, s, batch, now); err != nil {
			return nil, err
		}
		for j, i := range idx[s] {
			entries[i].Seq = batch[j].Seq
		}
	}
	return entries, nil
}

func (h *Hub) publishStream(ctx context.Context, key Stream, batch []Entry, now time.Time) error {
	st, err := h.lockStream(ctx, key)
	if err != nil {
		return fmt.Errorf("publish log entries: %w", err)
	}
	if h.closed.Load() {
		st.mu.Unlock()
		return fmt.Errorf("publish log entries: %w", ErrHubClosed)
	}
	for i := range batch {
		st.lastSeq++
		batch[i].Seq = st.lastSeq
		st.ring.push(batch[i])
	}
	st.ring.trim(st.ret, now.Add(-st.ret.MaxAge))
	st.fanoutLocked(h, batch, now)
	if h.writer != nil {
		// Enqueued under the stream lock so the backlog sees seq order.
		h.writer.enqueue(slices.Clone(batch))
	}
	st.mu.Unlock()
	if h.writer != nil {
		if err := h.writer.waitRoom(ctx); err != nil {
			return fmt.Errorf("publish log entries: backlog: %w", err)
		}
	}
	return nil
}

// Streams lists the streams the hub knows (published to, subscribed to, or
// found in a backlog that is a StreamLister), sorted by service then env.
// A stream not restored from the backlog yet is restored now; one that
// fails to restore is listed with what is known.
func (h *Hub) Streams() []StreamInfo {
	h.mu.Lock()
	sts := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		sts = append(sts, st)
	}
	h.mu.Unlock()
	out := make([]StreamInfo, 0, len(sts))
	for _, st := range sts {
		st.mu.Lock()
		if !st.loaded {
			if err := h.restoreLocked(context.Background(), st); err != nil {
				h.log.Error("restore log stream failed", "stream", st.key.String(), "err", err)
			}
		}
		out = append(out, StreamInfo{
			Stream: st.key, LastSeq: st.lastSeq, FirstSeq: st.ring.first(),
			Entries: st.ring.len(), Bytes: st.ring.bytes, Viewers: st.viewers,
		})
		st.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b StreamInfo) int {
		if a.Stream.Service != b.Stream.Service {
			if a.Stream.Service < b.Stream.Service {
				return -1
			}
			return 1
		}
		if a.Stream.Env < b.Stream.Env {
			return -1
		}
		if a.Stream.Env > b.Stream.Env {
			return 1
		}
		return 0
	})
	return out
}

// Range returns up to limit entries of the stream with seq > afterSeq, in
// seq order (limit <= 0: no limit). Recent entries come from memory; older
// ones from the backlog, if there is one.
func (h *Hub) Range(s Stream, afterSeq int64, limit int) ([]Entry, error) {
	ctx := context.Background()
	st, err := h.lockStream(ctx, s)
	if err != nil {
		return nil, fmt.Errorf("range log stream %s: %w", s, err)
	}
	first := st.ring.first()
	if h.writer == nil || (first > 0 && afterSeq >= first-1) || (first == 0 && afterSeq >= st.lastSeq) {
		es := slices.Clone(st.ring.after(afterSeq))
		st.mu.Unlock()
		if limit > 0 && len(es) > limit {
			es = es[:limit]
		}
		return es, nil
	}
	st.mu.Unlock()
	// Older than memory: the backlog must have everything published so far.
	if err := h.writer.flush(ctx); err != nil {
		return nil, fmt.Errorf("range log stream %s: %w", s, err)
	}
	es, err := h.writer.backlog.Range(ctx, s, afterSeq, time.Time{}, limit)
	if err != nil {
		return nil, fmt.Errorf("range log stream %s: %w", s, err)
	}
	return es, nil
}

// Close ends every viewer with ErrHubClosed, writes what the backlog has
// pending and waits for the hub's goroutines. It does not close the Backlog.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed.Load() {
		h.mu.Unlock()
		return nil
	}
	h.closed.Store(true)
	sts := make([]*stream, 0, len(h.streams))
	for _, st := range h.streams {
		sts = append(sts, st)
	}
	h.mu.Unlock()
	for _, st := range sts {
		st.mu.Lock()
		for _, g := range st.groups {
			for v := range g.viewers {
				v.mu.Lock()
				v.endLocked(ErrHubClosed)
				v.mu.Unlock()
				v.group = nil
			}
		}
		st.groups = nil
		st.viewers = 0
		st.mu.Unlock()
	}
	if h.writer == nil {
		h.wg.Wait()
		return nil
	}
	h.writer.close()
	h.wg.Wait()
	return h.writer.err()
}

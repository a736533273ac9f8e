package slogship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Shipper. URL, Token, Service and Env are required.
type Config struct {
	// URL is loggate's base URL, e.g. "https://loggate.example.com".
	URL string
	// Token is the source token (Authorization: Bearer) that may write
	// Service/Env.
	Token string
	// Service and Env name the stream this service writes.
	Service, Env string
	// Instance names this process to loggate (acknowledgement counts); zero
	// means hostname-pid.
	Instance string
	// HTTPClient sends batches; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// QueueSize bounds the records waiting to be shipped; beyond it records
	// are dropped, counted and announced. Memory for twice this many
	// records is allocated at New (about 300 bytes each). Zero means 4096.
	QueueSize int
	// BatchSize is the most records in one ingest request; zero means 512.
	BatchSize int
	// FlushInterval is the longest a record waits to be shipped; zero
	// means 100ms.
	FlushInterval time.Duration
	// LocalDebug also writes records enabled only by a raised level to the
	// wrapped handler. By default they go to loggate alone, so debug detail
	// does not pile up in the service's own log files.
	LocalDebug bool
	// NoControl disables the control connection: the level is never raised.
	NoControl bool
	// Logger receives the library's own problems (unreachable loggate,
	// ignored control frames). It must not be built on this Shipper's
	// handler. Nil means a text logger on stderr.
	Logger *slog.Logger
}

// Stats are the Shipper's counters.
type Stats struct {
	Shipped  int64 // records accepted by loggate
	Dropped  int64 // records dropped because the queue was full
	Unsent   int64 // records lost because loggate refused or was unreachable
	Batches  int64 // successful ingest requests
	Frames   int64 // control frames applied
	Ignored  map[string]int64
	Connects int64 // control connections made
	// Connected says whether the control connection is up now.
	Connected bool
	// Rules is the number of raised-level rules in force now.
	Rules int
}

// Shipper ships records and follows loggate's level changes. Its
// goroutines (sender and control loop) run from New until Close.
type Shipper struct {
	cfg      Config
	ingest   string // full ingest URL
	control  string // control WebSocket URL
	client   *http.Client
	log      *slog.Logger
	queue    *queue
	rules    atomic.Pointer[ruleSet] // nil: no raised level
	stop     chan struct{}
	stopOnce sync.Once
	done     sync.WaitGroup
	flushReq chan chan struct{}

	shipped, dropped, unsent, batches, frames, connects atomic.Int64
	connected                                           atomic.Bool
	ignoredMu                                           sync.Mutex
	ignored                                             map[string]int64 // guarded by ignoredMu
}

type item struct {
	h      *handler
	rec    slog.Record
	raised bool // enabled only by a raised level
}

// New validates cfg and starts shipping and the control connection.
func New(cfg Config) (*Shipper, error) {
	if cfg.URL == "" || cfg.Token == "" || cfg.Service == "" || cfg.Env == "" {
		return nil, errors.New("slogship: URL, Token, Service and Env are required")
	}
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("slogship: URL %q is not an http(s) URL", cfg.URL)
	}
	if cfg.Instance == "" {
		host, _ := os.Hostname()
		cfg.Instance = host + "-" + strconv.Itoa(os.Getpid())
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = 100 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	q := url.Values{"service": {cfg.Service}, "env": {cfg.Env}}
	ing := *base
	ing.Path = trimSlash(base.Path) + "/api/v1/ingest"
	ing.RawQuery = q.Encode()
	ctl := *base
	ctl.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	ctl.Path = trimSlash(base.Path) + "/api/v1/control/levels"
	q.Set("instance", cfg.Instance)
	ctl.RawQuery = q.Encode()
	s := &Shipper{cfg: cfg, ingest: ing.String(), control: ctl.String(), client: cfg.HTTPClient,
		log: cfg.Logger.With("component", "slogship"), queue: newQueue(cfg.QueueSize, cfg.BatchSize),
		stop: make(chan struct{}), flushReq: make(chan chan struct{}), ignored: map[string]int64{}}
	s.done.Add(1)
	go s.sendLoop()
	if !cfg.NoControl {
		s.done.Add(1)
		go s.controlLoop()
	}
	return s, nil
}

func trimSlash(p string) string {
	for len(p) > 0 && p[len(p)-1] == '/' {
		p = p[:len(p)-1]
	}
	return p
}

// Handler wraps inner: see the package comment.
func (s *Shipper) Handler(inner slog.Handler) slog.Handler {
	return &handler{s: s, inner: inner}
}

// Flush ships what is queued now and waits for it (or ctx).
func (s *Shipper) Flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case s.flushReq <- done:
	case <-s.stop:
		return errors.New("slogship: closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the control connection (the level returns to normal),
// ships what is queued and waits for the goroutines, or for ctx.
func (s *Shipper) Close(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.rules.Store(nil)
	waited := make(chan struct{})
	go func() { s.done.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the counters.
func (s *Shipper) Stats() Stats {
	st := Stats{Shipped: s.shipped.Load(), Dropped: s.dropped.Load(), Unsent: s.unsent.Load(),
		Batches: s.batches.Load(), Frames: s.frames.Load(), Connects: s.connects.Load(),
		Connected: s.connected.Load(), Ignored: map[string]int64{}}
	if rs := s.rules.Load(); rs != nil {
		st.Rules = len(rs.rules)
	}
	s.ignoredMu.Lock()
	for k, v := range s.ignored {
		st.Ignored[k] = v
	}
	s.ignoredMu.Unlock()
	return st
}

// enqueue never blocks: a full queue drops the record.
func (s *Shipper) enqueue(h *handler, r slog.Record, raised bool) {
	if !s.queue.push(item{h: h, rec: r.Clone(), raised: raised}) {
		s.dropped.Add(1)
	}
}

// queue holds records for the sender. A push takes a mutex and appends;
// it wakes the sender only when a batch is full, because waking another
// goroutine per record costs the caller more than the record itself. The
// sender otherwise takes what is there every FlushInterval.
type queue struct {
	mu    sync.Mutex
	items []item // guarded by mu
	spare []item // guarded by mu: the slice the sender last drained
	max   int
	batch int
	full  chan struct{} // capacity 1: "a batch is waiting"
}

func newQueue(max, batch int) *queue {
	// Both slices are allocated whole up front: growing them under load
	// would make the callers pay for copying and collecting.
	return &queue{items: make([]item, 0, max), spare: make([]item, 0, max), max: max, batch: batch,
		full: make(chan struct{}, 1)}
}

func (q *queue) push(it item) bool {
	q.mu.Lock()
	if len(q.items) >= q.max {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	n := len(q.items)
	q.mu.Unlock()
	if n == q.batch {
		select {
		case q.full <- struct{}{}:
		default:
		}
	}
	return true
}

// take returns what is queued; the slice is the sender's until the next take.
func (q *queue) take() []item {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.items
	clear(q.spare) // drop references to the records shipped last time
	q.items, q.spare = q.spare[:0], out
	return out
}

// sendLoop ships queued records in batches until Close, then ships what
// is left.
func (s *Shipper) sendLoop() {
	defer s.done.Done()
	var buf bytes.Buffer
	var reportedDrops int64
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	ship := func() {
		items := s.queue.take()
		for len(items) > 0 || s.dropped.Load() > reportedDrops {
			n := min(len(items), s.cfg.BatchSize)
			for _, it := range items[:n] {
				it.h.encode(&buf, it.rec, it.raised)
			}
			items = items[n:]
			if d := s.dropped.Load(); d > reportedDrops {
				// The notice travels in the batch, built from counters only.
				appendNotice(&buf, time.Now(), d-reportedDrops, d)
				reportedDrops = d
				n++
			}
			s.post(buf.Bytes(), n)
			buf.Reset()
		}
	}
	for {
		select {
		case <-s.queue.full:
		case <-tick.C:
		case done := <-s.flushReq:
			ship()
			close(done)
			continue
		case <-s.stop:
			ship()
			return
		}
		ship()
	}
}

// post sends one batch, once more after a short pause if loggate was
// unreachable or overloaded; after that the batch is counted as unsent
// (holding it would make memory unbounded while loggate is away).
func (s *Shipper) post(body []byte, n int) {
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(500 * time.Millisecond):
			case <-s.stop:
			}
		}
		req, err := http.NewRequest(http.MethodPost, s.ingest, bytes.NewReader(body))
		if err != nil {
			break
		}
		req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := s.client.Do(req)
		if err != nil {
			s.log.Warn("loggate unreachable; logging locally only", "err", err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		switch {
		case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted:
			s.shipped.Add(int64(n))
			s.batches.Add(1)
			return
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
			s.log.Warn("loggate refused a batch; retrying once", "status", resp.StatusCode)
			continue
		default:
			s.log.Warn("loggate refused a batch", "status", resp.StatusCode)
		}
		break
	}
	s.unsent.Add(int64(n))
}

func (s *Shipper) countIgnored(reason string, n int) {
	s.ignoredMu.Lock()
	s.ignored[reason] += int64(n)
	s.ignoredMu.Unlock()
}

package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// Source is where a Runner reads events; *audit.Store satisfies it.
type Source interface {
	After(ctx context.Context, after int64, limit int) ([]audit.Record, error)
}

var _ Source = (*audit.Store)(nil)

// Sink delivers records to one receiver.
type Sink interface {
	// Deliver sends recs, oldest first, and returns nil only when every one
	// was handed over. On error the Runner sends the whole batch again
	// later, so a Sink may deliver a record more than once.
	Deliver(ctx context.Context, recs []audit.Record) error
	// Close releases connections and files.
	Close() error
}

// Delivery describes one delivery attempt, for metrics.
type Delivery struct {
	Sink     string
	Events   int   // records in the batch
	FirstSeq int64 // seq of the batch's first record
	LastSeq  int64 // seq of the batch's last record
	Cursor   int64 // the saved cursor after the attempt
	// Lag is how old the batch's last event was when the attempt ended.
	Lag     time.Duration
	Attempt int   // 1 for a first try, 2 for the first retry, ...
	Err     error // nil when the batch was delivered
	// Checkpoint is the size of the signed checkpoint pushed, for a
	// checkpoint push (Events is then 0); zero for a batch of events.
	Checkpoint int64
}

// Config configures NewRunner.
type Config struct {
	// Name identifies the sink in metrics and logs (required).
	Name string
	// Source is the audit store (required).
	Source Source
	// Sink is the receiver (required). Run closes it when it returns.
	Sink Sink
	// CursorFile holds the seq of the last delivered event (required
	// unless Cursor is set). It is created when absent (delivery then
	// starts at the first event).
	CursorFile string
	// Cursor, if set, keeps the cursor instead of CursorFile (e.g. in
	// Redis, shared by replicas that take turns running the sink).
	Cursor CursorStore
	// Batch is how many events one Deliver call gets. If zero, 256.
	Batch int
	// PollInterval is how often the Source is asked for new events when
	// idle (Wake asks sooner). If zero, one second.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries, which
	// doubles from MinBackoff. If zero, 500ms and one minute.
	MinBackoff, MaxBackoff time.Duration
	// Observe, if set, is called after every delivery attempt, of events
	// or of a checkpoint (from Run's goroutine; it must not block).
	Observe func(Delivery)
	// Checkpoint, if set and Sink is a CheckpointSink, returns the trail's
	// newest signed checkpoint. The Runner then pushes every new checkpoint
	// it sees, once the events it covers have been delivered, and at most
	// once per CheckpointEvery, so the receiver holds an independent copy of
	// the signed history (see CheckpointSink).
	Checkpoint func(context.Context) (audit.Checkpoint, error)
	// CheckpointEvery spaces checkpoint pushes. If zero, 10 seconds.
	CheckpointEvery time.Duration
	// Now returns the current time. If nil, time.Now.
	Now func() time.Time
	// Logger receives delivery errors (never event contents). If nil,
	// nothing is logged.
	Logger *slog.Logger
}

// Runner feeds one Sink from the audit trail.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu     sync.Mutex // guards cursor
	cursor int64

	cps cpState // owned by Run's goroutine
}

// cpState is a Runner's checkpoint pushing.
type cpState struct {
	sink     CheckpointSink // nil: no pushing
	pending  *audit.Checkpoint
	lastNote string    // the note pushed last
	nextAsk  time.Time // when to ask for the newest checkpoint again
	retryAt  time.Time // after a failed push: when to try again
	pushed   atomic.Int64
}

// NewRunner validates cfg and loads the cursor.
func NewRunner(cfg Config) (*Runner, error) {
	switch {
	case cfg.Name == "":
		return nil, errors.New("audit sink: Name is required")
	case cfg.Source == nil || cfg.Sink == nil:
		return nil, fmt.Errorf("audit sink %s: Source and Sink are required", cfg.Name)
	case cfg.CursorFile == "" && cfg.Cursor == nil:
		return nil, fmt.Errorf("audit sink %s: CursorFile or Cursor is required", cfg.Name)
	}
	if cfg.Cursor == nil {
		cfg.Cursor = FileCursor(cfg.CursorFile)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 256
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.MinBackoff)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CheckpointEvery <= 0 {
		cfg.CheckpointEvery = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cur, err := cfg.Cursor.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("audit sink %s: %w", cfg.Name, err)
	}
	r := &Runner{cfg: cfg, log: log.With("sink", cfg.Name), wake: make(chan struct{}, 1), cursor: cur}
	if cs, ok := cfg.Sink.(CheckpointSink); ok && cfg.Checkpoint != nil {
		r.cps.sink = cs
	}
	return r, nil
}

// Name returns Config.Name.
func (r *Runner) Name() string { return r.cfg.Name }

// Cursor returns the seq of the last event delivered and saved.
func (r *Runner) Cursor() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cursor
}

// Wake makes Run look for new events now instead of at the next poll.
// It never blocks.
func (r *Runner) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run delivers events until ctx ends, then closes the Sink and returns nil.
// It returns an error only if the Sink cannot be closed.
func (r *Runner) Run(ctx context.Context) error {
	defer func() {
		if err := r.cfg.Sink.Close(); err != nil {
			r.log.Warn("audit sink close", "err", err)
		}
	}()
	for ctx.Err() == nil {
		recs, err := r.cfg.Source.After(ctx, r.Cursor(), r.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("audit sink read", "err", err)
			}
			r.sleep(ctx, r.cfg.MinBackoff)
			continue
		}
		if len(recs) == 0 {
			r.pushCheckpoint(ctx)
			r.idle(ctx)
			continue
		}
		r.deliver(ctx, recs)
		r.pushCheckpoint(ctx)
	}
	return nil
}

// pushCheckpoint hands the newest signed checkpoint to a CheckpointSink:
// it asks for the newest one at most once per CheckpointEvery, keeps it
// while the events it covers are not all delivered yet (so a receiver never
// holds a checkpoint ahead of the events it has, and a busy trail whose
// newest checkpoint always runs ahead still gets one pushed), and pushes it
// unless it is the one pushed last. A failed push is tried again after
// CheckpointEvery; it never holds up the events.
func (r *Runner) pushCheckpoint(ctx context.Context) {
	c := &r.cps
	if c.sink == nil || ctx.Err() != nil {
		return
	}
	now := r.cfg.Now()
	if c.pending == nil {
		if now.Before(c.nextAsk) {
			return
		}
		c.nextAsk = now.Add(r.cfg.CheckpointEvery)
		cp, err := r.cfg.Checkpoint(ctx)
		if err != nil {
			if ctx.Err() == nil {
				r.log.Warn("audit sink checkpoint read", "err", err)
			}
			return
		}
		if cp.Note == "" || cp.Note == c.lastNote {
			return
		}
		c.pending = &cp
	}
	if c.pending.Size > r.Cursor() || now.Before(c.retryAt) {
		return
	}
	err := c.sink.DeliverCheckpoint(ctx, *c.pending)
	if r.cfg.Observe != nil {
		r.cfg.Observe(Delivery{Sink: r.cfg.Name, Checkpoint: c.pending.Size, Cursor: r.Cursor(), Attempt: 1, Err: err})
	}
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("audit sink checkpoint delivery failed", "size", c.pending.Size, "err", err)
		}
		c.retryAt = now.Add(r.cfg.CheckpointEvery)
		return
	}
	c.lastNote, c.pending = c.pending.Note, nil
	c.pushed.Add(1)
}

// CheckpointsPushed returns how many checkpoints Run has pushed.
func (r *Runner) CheckpointsPushed() int64 { return r.cps.pushed.Load() }

// deliver sends one batch until it is delivered or ctx ends, then saves the
// cursor.
func (r *Runner) deliver(ctx context.Context, recs []audit.Record) {
	d := Delivery{Sink: r.cfg.Name, Events: len(recs), FirstSeq: recs[0].Seq, LastSeq: recs[len(recs)-1].Seq}
	for attempt := 1; ; attempt++ {
		d.Attempt = attempt
		d.Err = r.cfg.Sink.Deliver(ctx, recs)
		if d.Err == nil {
			if err := r.save(ctx, d.LastSeq); err != nil {
				// Delivered but not remembered: a restart sends it again.
				r.log.Error("audit sink cursor", "err", err)
			}
		}
		d.Cursor = r.Cursor()
		d.Lag = max(0, r.cfg.Now().Sub(recs[len(recs)-1].Time))
		if r.cfg.Observe != nil {
			r.cfg.Observe(d)
		}
		if d.Err == nil {
			return
		}
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("audit sink delivery failed", "attempt", attempt, "first_seq", d.FirstSeq, "err", d.Err)
		r.sleep(ctx, r.backoff(attempt))
	}
}

func (r *Runner) save(ctx context.Context, seq int64) error {
	if err := r.cfg.Cursor.Save(context.WithoutCancel(ctx), seq); err != nil {
		r.mu.Lock()
		r.cursor = seq // go on from here; only a restart repeats the batch
		r.mu.Unlock()
		return err
	}
	r.mu.Lock()
	r.cursor = seq
	r.mu.Unlock()
	return nil
}

// backoff returns MinBackoff*2^(attempt-1), capped at MaxBackoff, with up
// to 20% jitter so many gateways do not retry in step.
func (r *Runner) backoff(attempt int) time.Duration {
	d := r.cfg.MinBackoff
	for i := 1; i < attempt && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

func (r *Runner) idle(ctx context.Context) {
	t := time.NewTimer(r.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.wake:
	case <-t.C:
	}
}

func (r *Runner) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
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
	// Observe, if set, is called after every delivery attempt (from Run's
	// goroutine; it must not block).
	Observe func(Delivery)
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cur, err := cfg.Cursor.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("audit sink %s: %w", cfg.Name, err)
	}
	return &Runner{cfg: cfg, log: log.With("sink", cfg.Name), wake: make(chan struct{}, 1), cursor: cur}, nil
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
			r.idle(ctx)
			continue
		}
		r.deliver(ctx, recs)
	}
	return nil
}

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

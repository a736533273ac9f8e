package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Event kinds the gateway sends. Targets may list any of them in Kinds.
const (
	KindRequestCreated   = "request.created"
	KindRequestApproved  = "request.approved"
	KindRequestDenied    = "request.denied"
	KindRequestCancelled = "request.cancelled"
	KindBreakGlass       = "request.break_glass"
	KindGrantExpiring    = "grant.expiring"
	KindGrantRevoked     = "grant.revoked"
	// KindAlertFired and KindAlertResolved carry {"alert": {...}}: a
	// loggate alert's rule, state, stream, counts and link, never a line.
	KindAlertFired    = "alert.fired"
	KindAlertResolved = "alert.resolved"
)

// Outcomes passed to Config.OnAttempt, one per delivery attempt.
const (
	// OutcomeDelivered: the receiver answered 2xx; the message is done.
	OutcomeDelivered = "delivered"
	// OutcomeRetrying: the attempt failed (network error, timeout, non-2xx)
	// and the message will be tried again later.
	OutcomeRetrying = "retrying"
	// OutcomeAbandoned: the attempt failed and the message is older than
	// Config.MaxAge; it stays in the outbox marked abandoned.
	OutcomeAbandoned = "abandoned"
)

// Formats of a target's request body.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// ErrClosed is returned by Notify after Close.
var ErrClosed = errors.New("notifier closed")

// Target is one webhook receiver.
type Target struct {
	// URL receives a POST per message. Required, http or https. It is never
	// logged or stored (a Slack URL is a credential).
	URL string
	// Secret signs each body Standard-Webhooks style (webhook-id,
	// webhook-timestamp, webhook-signature headers). A "whsec_" prefix means
	// the rest is the base64 key; otherwise the string's bytes are the key.
	// Empty: requests are sent unsigned.
	Secret string
	// Kinds are the event kinds sent to this target. Empty: all kinds.
	Kinds []string
	// Format is FormatJSON (the default when empty): the event envelope
	// {"id","type","timestamp","data"}; or FormatSlack: {"text": ...}.
	Format string
}

// Config configures a Notifier. Fields without a zero-value note are
// required.
type Config struct {
	// Path is the outbox's SQLite file, created if absent. Required unless
	// Redis is set (then it is unused).
	Path string
	// Redis, if set, holds the outbox shared by every replica instead of
	// the SQLite file: a Redis Stream read through a consumer group, so
	// each message is attempted by one replica at a time, and one a dead
	// replica held is claimed by another after RedisClaimIdle. Not closed
	// by the Notifier. Nil: the SQLite outbox at Path.
	Redis *redis.Client
	// RedisPrefix namespaces the outbox's keys. Zero: "loggate:".
	RedisPrefix string
	// RedisClaimIdle is how long a message held by another replica must
	// sit untouched (its replica dead or stalled) before this one claims
	// it. Live replicas touch what they hold well within it. Zero: 30s.
	RedisClaimIdle time.Duration
	// Targets receive the messages. Empty: Notify stores nothing.
	Targets []Target
	// PublicURL, if set, is the gateway's origin; Slack texts link to it.
	PublicURL string
	// Client makes the requests. Nil: a client with a 10s timeout.
	Client *http.Client
	// MinBackoff is the delay after the first failed attempt; each further
	// failure doubles it (with jitter). Zero: 1s.
	MinBackoff time.Duration
	// MaxBackoff caps the delay between attempts. Zero: 10m.
	MaxBackoff time.Duration
	// MaxRetryAfter caps how long a receiver's Retry-After may hold a
	// message back. Zero: 1h.
	MaxRetryAfter time.Duration
	// MaxAge is how long a message is retried before it is abandoned.
	// Zero: 72h.
	MaxAge time.Duration
	// MaxConcurrent bounds attempts in flight. Break-glass messages are
	// never held back by it. Zero: 4.
	MaxConcurrent int
	// DrainTimeout bounds how long Close keeps delivering what is due.
	// Zero: 5s.
	DrainTimeout time.Duration
	// OnAttempt, if set, is called once per delivery attempt with the
	// message's kind and an Outcome* constant (for metrics). It must not
	// block.
	OnAttempt func(kind, outcome string)
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// Logger receives delivery failures (never URLs or secrets). Nil:
	// discard.
	Logger *slog.Logger
}

// target is a validated Target.
type target struct {
	key    string // hash of URL and format: how the outbox names it
	url    string
	secret []byte
	kinds  map[string]bool // nil: all
	format string
}

func (t *target) wants(kind string) bool { return t.kinds == nil || t.kinds[kind] }

// Notifier queues notifications in its outbox and delivers them. It is safe
// for concurrent use. Close stops it.
type Notifier struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	box     outbox
	targets []*target
	byKey   map[string]*target

	wake chan struct{} // capacity 1: "look at the outbox now"
	stop chan struct{} // closed by Close: the loop exits
	done chan struct{} // closed when the loop has exited
	// drained is closed by the loop once Close has begun and nothing is
	// due or in flight: Close's drain is over.
	drained chan struct{}
	sem     chan struct{} // MaxConcurrent slots for ordinary attempts

	// ctx is cancelled by Close after draining, aborting attempts in
	// flight (their rows stay pending for the next start).
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool            // guarded by mu
	inflight map[string]bool // row ids being attempted; guarded by mu
	finished []string        // attempts done, still in inflight until dispatch clears them; guarded by mu
	attempts sync.WaitGroup  // attempt goroutines

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg, opens (creating) the outbox and starts the delivery
// goroutine, which picks up anything left undelivered by a previous run.
func New(ctx context.Context, cfg Config) (*Notifier, error) {
	if cfg.Path == "" && cfg.Redis == nil {
		return nil, errors.New("notify: Config.Path (or Config.Redis) is required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	setDefault(&cfg.MinBackoff, time.Second)
	setDefault(&cfg.MaxBackoff, 10*time.Minute)
	setDefault(&cfg.MaxRetryAfter, time.Hour)
	setDefault(&cfg.MaxAge, 72*time.Hour)
	setDefault(&cfg.MaxConcurrent, 4)
	setDefault(&cfg.DrainTimeout, 5*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, log: cfg.Logger, now: cfg.Now, byKey: map[string]*target{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}), drained: make(chan struct{}),
		sem: make(chan struct{}, cfg.MaxConcurrent), inflight: map[string]bool{}}
	for i, t := range cfg.Targets {
		vt, err := validTarget(t)
		if err != nil {
			return nil, fmt.Errorf("notify: target %d: %w", i+1, err)
		}
		if n.byKey[vt.key] != nil {
			return nil, fmt.Errorf("notify: target %d: the same URL and format twice", i+1)
		}
		n.targets = append(n.targets, vt)
		n.byKey[vt.key] = vt
	}
	box, err := newOutbox(ctx, cfg)
	if err != nil {
		return nil, err
	}
	n.box = box
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.run()
	return n, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func validTarget(t Target) (*target, error) {
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is not echoed: it may carry a token.
		return nil, errors.New("URL must be an absolute http(s) URL")
	}
	format := t.Format
	if format == "" {
		format = FormatJSON
	}
	if format != FormatJSON && format != FormatSlack {
		return nil, fmt.Errorf("format %q: want %q or %q", t.Format, FormatJSON, FormatSlack)
	}
	key, err := secretKey(t.Secret)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(format + "\x00" + t.URL))
	vt := &target{key: hex.EncodeToString(sum[:12]), url: t.URL, secret: key, format: format}
	if len(t.Kinds) > 0 {
		vt.kinds = map[string]bool{}
		for _, k := range t.Kinds {
			if k = strings.TrimSpace(k); k != "" {
				vt.kinds[k] = true
			}
		}
	}
	return vt, nil
}

// urgent kinds skip the concurrency limit and go first: people must hear
// about a break-glass access at once.
func urgent(kind string) bool { return kind == KindBreakGlass }

// Notify stores one message per target that wants kind and wakes the
// delivery goroutine. payload is marshalled to JSON now, so later changes
// to it do not matter. A nil error means the messages are durably queued.
func (n *Notifier) Notify(ctx context.Context, kind string, payload map[string]any) error {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if kind == "" {
		return errors.New("notify: empty kind")
	}
	var wanted []*target
	for _, t := range n.targets {
		if t.wants(kind) {
			wanted = append(wanted, t)
		}
	}
	if len(wanted) == 0 {
		return nil
	}
	now := n.now()
	ev := envelope{ID: newMessageID(), Type: kind, Timestamp: now.UTC(), Data: payload}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("notify %s: encode payload: %w", kind, err)
	}
	rows := make([]row, 0, len(wanted))
	for _, t := range wanted {
		b := body
		if t.format == FormatSlack {
			if b, err = slackBody(kind, body, n.cfg.PublicURL); err != nil {
				return fmt.Errorf("notify %s: %w", kind, err)
			}
		}
		rows = append(rows, row{ID: ev.ID + "." + t.key, MsgID: ev.ID, Target: t.key, Kind: kind, Body: b,
			Urgent: urgent(kind), Created: now, NextAt: now})
	}
	if err := n.box.add(ctx, rows); err != nil {
		return fmt.Errorf("notify %s: %w", kind, err)
	}
	n.poke()
	return nil
}

// envelope is the JSON body: the Standard Webhooks payload shape.
type envelope struct {
	ID        string         `json:"id"`
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func newMessageID() string {
	var b [15]byte
	_, _ = rand.Read(b[:])
	return "msg_" + base64.RawURLEncoding.EncodeToString(b[:])
}

func (n *Notifier) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Pending counts messages still to be delivered (not abandoned).
func (n *Notifier) Pending(ctx context.Context) (int, error) {
	return n.box.pending(ctx)
}

// Close stops accepting messages, keeps delivering what is due for up to
// Config.DrainTimeout, waits for attempts in flight, and closes the outbox.
// Whatever is undelivered stays in the outbox for the next start.
func (n *Notifier) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed = true
		n.mu.Unlock()
		n.poke() // the loop notices closed and says when it is drained
		drain := time.NewTimer(n.cfg.DrainTimeout)
		select {
		case <-n.drained:
		case <-drain.C:
		}
		drain.Stop()
		close(n.stop)
		<-n.done
		n.cancel()
		n.attempts.Wait()
		n.closeErr = n.box.close()
	})
	return n.closeErr
}

// Targets reports how many targets are configured, for start-up logs.
func (n *Notifier) Targets() int { return len(n.targets) }

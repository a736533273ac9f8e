package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loggate/loggate/auth"
	"github.com/loggate/loggate/gateway/alert"
	"github.com/loggate/loggate/gateway/audit"
	"github.com/loggate/loggate/gateway/logs"
	"github.com/loggate/loggate/gateway/redact"
	"github.com/loggate/loggate/gateway/store"
	"github.com/loggate/loggate/policy"
)

// Authenticator says who a request comes from.
type Authenticator interface {
	// Authenticate identifies a request without touching cookies (used for
	// the WebSocket upgrade).
	Authenticate(r *http.Request) (auth.Identity, error)
	// AuthenticateHTTP also refreshes and re-issues the session cookie.
	AuthenticateHTTP(w http.ResponseWriter, r *http.Request) (auth.Identity, error)
	CheckCSRF(r *http.Request) error
	CSRFToken(r *http.Request) string
	HandleLogin(w http.ResponseWriter, r *http.Request)
	HandleCallback(w http.ResponseWriter, r *http.Request)
	HandleLogout(w http.ResponseWriter, r *http.Request)
	ClientConfig() auth.ClientConfig
	Ready(ctx context.Context) error
}

// Policy decides requests and who may act on them.
type Policy interface {
	Decide(ctx context.Context, in policy.Input) (policy.Decision, error)
	Authorize(ctx context.Context, in policy.ActionInput) (policy.ActionDecision, error)
	Revision() string
}

// Auditor is the audit trail as the gateway uses it.
type Auditor interface {
	Append(ctx context.Context, ev audit.Event) (audit.Event, error)
	Search(ctx context.Context, q audit.Query) (audit.Page, error)
	Get(ctx context.Context, id string) (audit.Event, error)
	Proof(ctx context.Context, id string) (audit.InclusionProof, error)
	LatestCheckpoint(ctx context.Context) (audit.Checkpoint, error)
	Consistency(ctx context.Context, from, to int64) (audit.ConsistencyProof, error)
	VerifierKeys() []string // every checkpoint verifier key ever used; empty when nothing is signed
	Export(ctx context.Context, w io.Writer, format string, q audit.Query) error
}

// Spooler is the audit spool as the gateway uses it (audit.Spool).
type Spooler interface {
	// Record appends ev, or spools it when the trail is unavailable;
	// spooled says which. An error means neither happened.
	Record(ctx context.Context, ev audit.Event) (out audit.Event, spooled bool, err error)
	// Pending lists the spooled events not yet appended.
	Pending() []audit.Event
	Stats() audit.SpoolStats
}

var (
	_ Spooler       = (*audit.Spool)(nil)
	_ Auditor       = (*audit.Store)(nil)
	_ Policy        = (*policy.Engine)(nil)
	_ Authenticator = (*auth.Authenticator)(nil)
)

// Limits bound what clients may send and hold.
type Limits struct {
	// MaxBodyBytes caps an API request body; zero means 1 MiB.
	MaxBodyBytes int64
	// MaxIngestBytes caps an ingest body after decompression; zero means 8 MiB.
	MaxIngestBytes int64
	// MaxLineBytes caps one ingested line; zero means 64 KiB.
	MaxLineBytes int
	// IngestRate is the requests per second allowed per source token, with a
	// burst of twice that; zero means 200.
	IngestRate float64
	// PublicAuditRate is the requests per second allowed per client address
	// (an IPv6 /64 counts as one) on the unauthenticated audit endpoints
	// (checkpoint, keys, consistency); zero means 2. PublicAuditBurst is
	// the bucket size; zero means 20.
	PublicAuditRate, PublicAuditBurst float64
	// MaxTailsPerUser caps concurrent tails per person; zero means 8.
	MaxTailsPerUser int
	// MaxTailsPerStream caps concurrent tails per stream; zero means 200.
	MaxTailsPerStream int
	// MaxTextLen caps reasons and comments in characters; zero means 1000.
	MaxTextLen int
}

// Config wires a Server. Fields without a zero-value note are required.
type Config struct {
	// PublicURL is the origin browsers and clients use (scheme://host[:port]).
	PublicURL *url.URL
	// AllowedOrigins lists extra origins allowed to open WebSockets.
	AllowedOrigins []string
	// TrustedProxies are the addresses whose X-Forwarded-For is believed;
	// nil means none: the peer address is the client address.
	TrustedProxies []netip.Prefix

	Auth Authenticator
	// Sessions lists and ends server-side browser sessions; nil: the
	// sessions API lists none and ends none.
	Sessions SessionManager
	Policy   Policy
	Audit    Auditor
	Store    *store.Store
	Hub      *logs.Hub
	// Redactor masks secrets at ingest and in reasons and comments.
	Redactor *redact.Redactor
	// RedactorsByEnv overrides Redactor for entries of some environments
	// (redaction profiles); nil means one rule set everywhere.
	RedactorsByEnv map[string]*redact.Redactor
	// Broadcast carries revocations and policy changes to other replicas;
	// nil means this is the only replica.
	Broadcast Broadcaster
	// ReplicaID, if set, is recorded as details.replica in stream.opened
	// events, so that after a crash this replica (and no other, whose
	// views may be live) closes the views it left open. It must survive a
	// restart and differ between replicas.
	ReplicaID string
	// Notifier queues notifications; nil means none are sent.
	Notifier Notifier
	// CertSources, if set, gives the current client-certificate source
	// mapping (sources_cert.go), asked on each ingest request so that a
	// reloaded CA bundle or map applies at once; nil (or a nil result)
	// means bearer source tokens only.
	CertSources func() *CertSources
	// SourceAuthBoth makes ingest require both a valid source token and
	// a client certificate mapped by CertSources; the source writes only
	// the streams both allow. Without CertSources every request is refused.
	SourceAuthBoth bool
	// SeparateSources takes the source routes (ingest, control levels)
	// off Handler, to be served by SourceHandler on a listener of their
	// own; each answers 404 for the other's routes.
	SeparateSources bool
	// Spool takes the closing events that cannot be refused (stream.closed)
	// when the trail is unavailable, and appends them once it is back (see
	// audit.Spool); nil means such an event is logged and lost.
	Spool Spooler
	// ViewCounts saves each live view's counts every ViewCountsInterval,
	// so a view cut off by a crash is closed at start-up with counts at
	// most one interval old; nil means only stream.progress events count.
	ViewCounts *audit.ViewCountsDir
	// ViewCountsInterval is how often a live view's counts are saved; zero
	// means 5s.
	ViewCountsInterval time.Duration

	Limits Limits
	// DigestKind names how the hub computes a view's digest, recorded in
	// stream.closed ("sha256" over the bytes sent, or "sha256-chained":
	// d = SHA256(d || SHA256(message)) from 32 zero bytes).
	DigestKind string
	// VerifyAudit runs an integrity check of the audit trail for the
	// security page; nil means not offered.
	VerifyAudit func(ctx context.Context) (audit.Report, error)
	// TailProgressInterval is how often a long view writes stream.progress;
	// zero means 1m.
	TailProgressInterval time.Duration
	// IdentityRecheckInterval is how often a tail opened with a browser
	// session re-checks its holder at the provider (see recheck.go). Zero: 5m.
	IdentityRecheckInterval time.Duration
	// Pages serves the browser UI; nil means no UI (API only).
	Pages http.Handler
	// Mounts are extra handlers by pattern (e.g. the development identity
	// provider at "/dev/oidc/").
	Mounts map[string]http.Handler
	// Registry receives the gateway's metrics; nil means a private registry.
	Registry *prometheus.Registry
	// ReadyChecks are extra readiness probes (e.g. Redis); each returns nil
	// when healthy.
	ReadyChecks map[string]func(context.Context) error
	// ReadyNotes are shown in /readyz's checks without affecting readiness
	// (e.g. an accepted weak Redis durability); nil means none.
	ReadyNotes map[string]string

	// Alerts evaluates alert rules on accepted (redacted) entries and on
	// committed audit events; nil means no alerting. Its sink is the
	// Server (AlertChanged).
	Alerts *alert.Engine
	// AlertStore keeps alerts; nil: none are kept (GET /api/v1/alerts lists none).
	AlertStore AlertStore
	// AlertReceivers get every firing and resolved alert (Alertmanager).
	AlertReceivers []AlertReceiver
	// AlertRulesFile is where PUT /api/v1/alert-rules saves; empty means
	// the rules cannot be edited through the API (404).
	AlertRulesFile string

	Now    func() time.Time
	Logger *slog.Logger
}

// Server is the gateway's HTTP face and workflow engine.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	mux *routeMux // every route, or all but the sources' with SeparateSources
	// sourceMux serves the source routes alone (SeparateSources), else nil.
	sourceMux *routeMux
	metrics   *metrics
	limits    Limits
	origins   map[string]bool

	// tails is the registry of live tail sessions; see tails.go.
	tails *tailRegistry
	// verify caches the last audit verification.
	verify verifyCache
	// table is the route table (routes.go), set once by New.
	table []route

	// ingestLimiter throttles ingest per source token.
	ingestLimiter *rateLimiter
	// publicLimiter throttles the public audit endpoints per client address.
	publicLimiter *rateLimiter
	// sourceBursts aggregates refused source tokens and writes; closed by
	// Shutdown.
	sourceBursts *burstAggregator
	// levels holds the raised-level views and the services listening for
	// them (levels.go, levels_http.go).
	levels *levelState

	// know is whether this replica is up to date with the control stream
	// (knowledge.go); guarded by knowMu, which is taken with no other lock.
	knowMu sync.Mutex
	know   knowledge

	// shutdown is closed when Shutdown begins; tails end with 4003.
	shutdown     chan struct{}
	shutdownOnce sync.Once
}

// New validates cfg and builds the route table.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.PublicURL == nil:
		return nil, errors.New("gateway: PublicURL is required")
	case cfg.Auth == nil, cfg.Policy == nil, cfg.Audit == nil, cfg.Store == nil, cfg.Hub == nil, cfg.Redactor == nil:
		return nil, errors.New("gateway: Auth, Policy, Audit, Store, Hub and Redactor are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdentityRecheckInterval <= 0 {
		cfg.IdentityRecheckInterval = 5 * time.Minute
	}
	if cfg.ViewCountsInterval <= 0 {
		cfg.ViewCountsInterval = 5 * time.Second
	}
	if cfg.TailProgressInterval == 0 {
		cfg.TailProgressInterval = time.Minute
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	l := &cfg.Limits
	setDefault(&l.MaxBodyBytes, 1<<20)
	setDefault(&l.MaxIngestBytes, 8<<20)
	setDefault(&l.MaxLineBytes, 64<<10)
	setDefault(&l.IngestRate, 200)
	setDefault(&l.PublicAuditRate, defaultPublicRate)
	setDefault(&l.PublicAuditBurst, defaultPublicBurst)
	setDefault(&l.MaxTailsPerUser, 8)
	setDefault(&l.MaxTailsPerStream, 200)
	setDefault(&l.MaxTextLen, 1000)

	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		limits:   cfg.Limits,
		origins:  map[string]bool{originOf(cfg.PublicURL): true},
		tails:    newTailRegistry(),
		levels:   newLevelState(),
		shutdown: make(chan struct{}),
	}
	for _, o := range cfg.AllowedOrigins {
		s.origins[strings.TrimRight(o, "/")] = true
	}
	s.ingestLimiter = newRateLimiter(l.IngestRate, 2*l.IngestRate, cfg.Now)
	s.publicLimiter = newRateLimiter(l.PublicAuditRate, l.PublicAuditBurst, cfg.Now)
	s.sourceBursts = newBurstAggregator(s.appendRefusal, cfg.Now, sourceFailureWindow, 10000)
	s.metrics = newMetrics(cfg.Registry)
	if cfg.Spool != nil {
		s.metrics.registerSpool(cfg.Registry, cfg.Spool)
	}
	s.routes()
	return s, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func originOf(u *url.URL) string { return u.Scheme + "://" + u.Host }

// ServeHTTP implements http.Handler with request ids, panics contained and
// security headers on every response.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(s.mux, w, r) }

// SourceHandler serves the source (ingest) routes alone, for a listener
// of their own; nil unless Config.SeparateSources.
func (s *Server) SourceHandler() http.Handler {
	if s.sourceMux == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serve(s.sourceMux, w, r) })
}

func (s *Server) serve(mux *routeMux, w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Request-Id")
	if !validRequestID(id) {
		id = newID("")
	}
	ctx := withRequestID(r.Context(), id)
	ctx = withClientAddr(ctx, s.clientAddr(r))
	r = r.WithContext(ctx)
	h := w.Header()
	h.Set("X-Request-Id", id)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	if h.Get("Content-Security-Policy") == "" {
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	}
	if s.cfg.PublicURL.Scheme == "https" {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	sw := &statusWriter{ResponseWriter: w}
	start := s.now()
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.log.Error("handler panic", "panic", fmt.Sprint(p), "path", r.URL.Path, "request_id", id)
			if sw.status == 0 {
				s.writeError(sw, r, errors.New("panic"))
			}
		}
		_, pattern := mux.Handler(r)
		s.metrics.observeHTTP(r.Method, pattern, sw.status, s.now().Sub(start))
	}()
	mux.ServeHTTP(sw, r)
}

// Handler returns the server as an http.Handler.
func (s *Server) Handler() http.Handler { return s }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and the WebSocket upgrader reach the
// underlying connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack is needed by the WebSocket upgrader, which asserts http.Hijacker.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("connection cannot be hijacked")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

// Flush supports streaming exports.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// clientAddr is the peer address, or the nearest untrusted X-Forwarded-For
// hop when the peer is a trusted proxy, so the audited address cannot be
// spoofed by a client.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return host
		}
		if !s.trusted(a) {
			return a.String()
		}
	}
	return host
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ClientAddr exposes the trusted-proxy-aware client address for the
// authenticator's audit events.
func (s *Server) ClientAddr(r *http.Request) string {
	if a := clientAddrFrom(r.Context()); a != "" {
		return a
	}
	return s.clientAddr(r)
}

// newID returns prefix + 20 random base32 characters (100 bits).
func newID(prefix string) string {
	var b [13]byte
	_, _ = rand.Read(b[:])
	return prefix + audit.IDEncoding.EncodeToString(b[:])[:20]
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyClientAddr
	keyRefusalMark
)

func withRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, keyRequestID, id)
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(keyRequestID).(string)
	return id
}

func withClientAddr(ctx context.Context, a string) context.Context {
	return context.WithValue(ctx, keyClientAddr, a)
}

func clientAddrFrom(ctx context.Context) string {
	a, _ := ctx.Value(keyClientAddr).(string)
	return a
}

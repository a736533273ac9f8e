package audit

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// dbFile is the store's file name inside Config.Dir.
const dbFile = "audit.db"

// DefaultOrigin names the log in checkpoints when Config.Origin is empty.
const DefaultOrigin = "loggate/audit"

// Config configures Open.
type Config struct {
	// Dir is the store directory (required). The store is Dir/audit.db; keys
	// live in Dir/keys/ (audit.key generated with mode 0600 if absent, and
	// audit.pub listing every verifier key ever used).
	Dir string
	// SigningKeyFile optionally names an Ed25519 private key (PKCS#8 PEM or a
	// note signer key) that overrides Dir/keys/audit.key.
	SigningKeyFile string
	// Origin names the log in checkpoints and is the note key name. It must
	// not contain spaces or '+'. If empty, DefaultOrigin.
	Origin string
	// CheckpointInterval is how often a checkpoint is appended, also when the
	// log is idle, so silence can be told from deletion. A checkpoint is also
	// written at Open and Close. If zero, one minute.
	CheckpointInterval time.Duration
	// Now returns the current time. If nil, time.Now.
	Now func() time.Time
	// Logger receives operational messages, never event contents. If nil,
	// nothing is logged.
	Logger *slog.Logger
	// Retention is how long event records are kept: every
	// RetentionInterval, records older than this are purged (see Purge)
	// unless a legal hold is on. If zero, records are kept forever.
	Retention time.Duration
	// RetentionInterval is how often retention runs. If zero, one hour.
	RetentionInterval time.Duration
	// OnCheckpoint, if set, receives every checkpoint once it is committed
	// to the checkpoints table (periodic, idle, at Open, at Close and from
	// Checkpoint), e.g. CheckpointLog.Append to keep a copy on another
	// mount. It runs on the writer goroutine: it must be quick and must not
	// call the store. Its error is logged; the checkpoint stays committed.
	OnCheckpoint func(Checkpoint) error
}

// maxBatch bounds how many appends share one transaction.
const maxBatch = 1024

// Store is the durable, append-only audit trail. It is safe for concurrent
// use. All writes go through one writer goroutine that batches concurrent
// appends into one transaction (group commit).
type Store struct {
	cfg    Config
	origin string
	now    func() time.Time
	log    *slog.Logger
	// key is the current checkpoint signer; verifiers lists every note
	// verifier key the store knows (audit.pub and the current key). Both
	// change only in RotateKey.
	key       atomic.Pointer[Signer]
	verifiers atomic.Pointer[[]string]
	rotMu     sync.Mutex // serialises RotateKey
	ckReqs    chan chan error

	wdb *sql.DB // one connection, used only by the writer goroutine (and Open/Close)
	rdb *sql.DB // read-only pool for Search, Get, Proof, Export

	// mu guards closed; Append holds it shared while enqueueing so Close can
	// tell when no more requests will arrive.
	mu      sync.RWMutex
	closed  bool
	closing bool // Close has begun (retention is stopping); appends still work
	reqs    chan *appendReq
	quit    chan struct{}
	done    chan struct{}

	// retMu serialises Purge and SetLegalHold. retStop/retDone own the
	// retention goroutine (nil when Config.Retention is zero).
	retMu   sync.Mutex
	retStop context.CancelFunc
	retDone chan struct{}

	stats struct{ appends, commits, failures, checkpoints, unavailable, purged atomic.Int64 }

	// Writer-owned state (only the writer goroutine touches it after Open).
	st           chainState
	stmts        map[string]*sql.Stmt                // prepared multi-row inserts on wdb
	dirty        bool                                // last commit failed: reload state before the next
	beforeCommit atomic.Pointer[func(*sql.Tx) error] // test seam: runs inside the transaction before COMMIT
}

// chainState is the tip of the chain and the tree frontier.
type chainState struct {
	size     int64     // number of events == last seq
	last     [32]byte  // hash of event seq==size (zero when empty)
	root     tlog.Hash // tree root at size
	frontier map[int64]tlog.Hash
}

type appendReq struct {
	ev    Event
	tail  []byte
	given bool // the caller assigned ev.ID: check for a repeat before committing
	done  chan appendRes
}

type appendRes struct {
	ev  Event
	err error
}

// Open opens (creating if needed) the store in cfg.Dir, loads or creates the
// signing key, restores the chain tip after a crash and writes a checkpoint.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("open audit store: %w: Dir is required", ErrInvalid)
	}
	s := &Store{
		cfg:    cfg,
		origin: cfg.Origin,
		now:    cfg.Now,
		log:    cfg.Logger,
		reqs:   make(chan *appendReq, maxBatch),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		stmts:  map[string]*sql.Stmt{},
		ckReqs: make(chan chan error),
	}
	if s.origin == "" {
		s.origin = DefaultOrigin
	}
	if strings.ContainsAny(s.origin, " \t\n+") {
		return nil, fmt.Errorf("open audit store: %w: origin %q", ErrInvalid, s.origin)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.cfg.CheckpointInterval <= 0 {
		s.cfg.CheckpointInterval = time.Minute
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	key, err := loadSigningKey(cfg.Dir, cfg.SigningKeyFile, s.origin)
	if err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	s.key.Store(key)
	if err := s.loadVerifiers(); err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}

	path := filepath.Join(cfg.Dir, dbFile)
	if f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	} else {
		f.Close()
	}
	if s.wdb, err = sql.Open("sqlite", writerDSN(path)); err != nil {
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	if s.rdb, err = sql.Open("sqlite", readerDSN(path)); err != nil {
		s.wdb.Close()
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	s.rdb.SetMaxOpenConns(4)
	if err := s.init(ctx); err != nil {
		s.wdb.Close()
		s.rdb.Close()
		return nil, fmt.Errorf("open audit store: %w", err)
	}
	go s.run()
	if cfg.Retention > 0 {
		if s.cfg.RetentionInterval <= 0 {
			s.cfg.RetentionInterval = time.Hour
		}
		var rctx context.Context
		rctx, s.retStop = context.WithCancel(context.Background())
		s.retDone = make(chan struct{})
		go s.retentionLoop(rctx)
	}
	return s, nil
}

func writerDSN(path string) string {
	return "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=cache_size(-16384)&_txlock=immediate"
}

func readerDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=query_only(1)"
}

func (s *Store) init(ctx context.Context) error {
	if _, err := s.wdb.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	var v string
	err := s.wdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='schema_version'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := s.wdb.ExecContext(ctx, `INSERT INTO meta(key,value) VALUES('schema_version',?),('origin',?)`,
			schemaVersion, s.origin); err != nil {
			return fmt.Errorf("write meta: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read meta: %w", err)
	case v != "1" && v != schemaVersion:
		return fmt.Errorf("%w: store schema version %s, want %s", ErrInvalid, v, schemaVersion)
	default:
		if v == "1" {
			if err := s.migrateV1(ctx); err != nil {
				return err
			}
		}
		var origin string
		if err := s.wdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key='origin'`).Scan(&origin); err != nil {
			return fmt.Errorf("read meta: %w", err)
		}
		if origin != s.origin {
			return fmt.Errorf("%w: store origin is %q, configured %q", ErrInvalid, origin, s.origin)
		}
	}
	if err := s.prepareInserts(ctx); err != nil {
		return err
	}
	if err := s.loadState(ctx); err != nil {
		return err
	}
	if err := s.checkHead(ctx); err != nil {
		return err
	}
	if err := s.checkpoint(ctx); err != nil {
		return err
	}
	s.log.Info("audit store open", "dir", s.cfg.Dir, "size", s.st.size, "origin", s.origin)
	return nil
}

func (s *Store) migrateV1(ctx context.Context) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, migrateV1SQL); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

// loadState reads the chain tip and tree frontier from the database.
func (s *Store) loadState(ctx context.Context) error {
	st := chainState{frontier: map[int64]tlog.Hash{}}
	var hash []byte
	err := s.wdb.QueryRowContext(ctx, `SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1`).Scan(&st.size, &hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("load chain tip: %w", err)
	case len(hash) != 32:
		return fmt.Errorf("%w: chain tip hash has %d bytes", ErrTampered, len(hash))
	default:
		copy(st.last[:], hash)
	}
	var leaves int64
	if err := s.wdb.QueryRowContext(ctx, `SELECT count(*) FROM tree`).Scan(&leaves); err != nil {
		return fmt.Errorf("load tree: %w", err)
	}
	if leaves != st.size {
		return fmt.Errorf("%w: %d events but %d tree leaves", ErrTampered, st.size, leaves)
	}
	r := &hashReader{ctx: ctx, q: s.wdb}
	idx := frontierIndexes(st.size)
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("load tree frontier: %w", err)
	}
	for i, x := range idx {
		st.frontier[x] = hs[i]
	}
	if st.root, err = tlog.TreeHash(st.size, r); err != nil {
		return fmt.Errorf("load tree root: %w", err)
	}
	s.st = st
	s.dirty = false
	return nil
}

// checkHead refuses to continue a log whose tip no signature covers: every
// commit re-signs the head in its own transaction, so after any crash the
// head states exactly the stored size and root. Re-signing a tampered tip
// would launder it.
func (s *Store) checkHead(ctx context.Context) error {
	var note string
	err := s.wdb.QueryRowContext(ctx, `SELECT note FROM head WHERE id = 1`).Scan(&note)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if s.st.size == 0 {
			return nil // a new store
		}
		return fmt.Errorf("%w: %d events but no signed head; run Verify", ErrTampered, s.st.size)
	case err != nil:
		return fmt.Errorf("read head: %w", err)
	}
	keys, err := readVerifierKeys(filepath.Join(s.cfg.Dir, keysDir, verifierFile))
	if err != nil {
		return err
	}
	cp, err := ParseCheckpoint([]byte(note), append(keys, s.key.Load().verifier)...)
	if err != nil {
		return fmt.Errorf("signed head: %w; run Verify", err)
	}
	if root, _ := cp.Root(); cp.Size != s.st.size || root != s.st.root {
		return fmt.Errorf("%w: signed head states %d events, store holds %d (or another root); run Verify",
			ErrTampered, cp.Size, s.st.size)
	}
	return nil
}

// PublicKey returns the checkpoint signing key's public half.
func (s *Store) PublicKey() ed25519.PublicKey {
	return s.key.Load().priv.Public().(ed25519.PublicKey)
}

// VerifierKey returns the note verifier key ("<origin>+<hash>+<base64>") that
// checks this store's checkpoints; give it to ParseCheckpoint or VerifyConfig.
func (s *Store) VerifierKey() string { return s.key.Load().verifier }

// VerifierKeys returns every note verifier key the store has signed with,
// oldest first, the current one last: what a client needs to check any
// checkpoint the store ever wrote (publish it, e.g. GET /api/v1/audit/keys).
func (s *Store) VerifierKeys() []string {
	return slices.Clone(*s.verifiers.Load())
}

// Origin returns the log's origin line.
func (s *Store) Origin() string { return s.origin }

// Stats are counters for metrics.
type Stats struct {
	Appends     int64 // events durably committed since Open
	Commits     int64 // append transactions committed (Appends/Commits is the mean group size)
	Failures    int64 // append or checkpoint transactions that failed
	Checkpoints int64 // checkpoints written since Open
	// Unavailable counts Append calls that returned ErrUnavailable: each is
	// an audited action the caller had to refuse (503). Export it as a
	// counter, e.g. loggate_audit_append_failures_total.
	Unavailable int64
	Purged      int64 // event records purged by retention since Open
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Appends:     s.stats.appends.Load(),
		Commits:     s.stats.commits.Load(),
		Failures:    s.stats.failures.Load(),
		Checkpoints: s.stats.checkpoints.Load(),
		Unavailable: s.stats.unavailable.Load(),
		Purged:      s.stats.purged.Load(),
	}
}

// Close stops the writer after committing every accepted append, writes a
// final checkpoint and closes the database. It is safe to call twice.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed || s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	if s.retStop != nil {
		s.retStop() // retention appends, so it stops before the writer
		<-s.retDone
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	var errs []error
	if err := s.checkpoint(context.Background()); err != nil {
		errs = append(errs, err)
	}
	if err := s.rdb.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := s.wdb.Close(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close audit store: %w", err)
	}
	return nil
}

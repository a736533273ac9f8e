package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DetailSpooledAt is the details key a spooled event carries: when the
// replica put it in its spool because the trail could not take it. The
// event's own time is when it happened; its seq says when it was appended.
const DetailSpooledAt = "spooled_at"

// Appender is the trail a Spool delivers to. Append must be idempotent on a
// caller-assigned event id (both stores are: a repeated id with the same
// content returns the stored event); Get finds an event by id.
type Appender interface {
	Append(ctx context.Context, ev Event) (Event, error)
	Get(ctx context.Context, id string) (Event, error)
}

// SpoolConfig configures OpenSpool.
type SpoolConfig struct {
	// Dir holds the spool's files (required; created with mode 0700).
	Dir string
	// Trail receives the spooled events (required).
	Trail Appender
	// Now stamps events and spooled_at; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages (file names and counts, never
	// event contents); nil discards.
	Logger *slog.Logger
	// RetryMin and RetryMax bound the drainer's backoff while the trail is
	// unavailable; zero means 200ms and 5s.
	RetryMin, RetryMax time.Duration
	// MaxRecords caps the spool; Record fails once it holds this many
	// events. Zero means 100,000.
	MaxRecords int
	// AppendTimeout bounds one append attempt; zero means 10s.
	AppendTimeout time.Duration
}

// SpoolStats describe a spool for /readyz and /metrics.
type SpoolStats struct {
	Depth   int       `json:"depth"`             // events waiting for the trail
	Oldest  time.Time `json:"oldest,omitzero"`   // spooled_at of the oldest waiting event
	Spooled int64     `json:"spooled"`           // events put in the spool since start
	Drained int64     `json:"drained"`           // events the drainer delivered since start
	Corrupt int64     `json:"corrupt"`           // records found torn or corrupt (quarantined, never appended)
	Failing string    `json:"failing,omitempty"` // the last delivery error while Depth > 0
}

// Spool is a replica's durable queue of events that must reach the audit
// trail but could not yet: closing events (a view ended) that cannot be
// refused the way an action can. Record tries the trail first; when the
// trail is unavailable, or older events still wait, it writes the event to
// an fsynced file under Dir, and a drainer goroutine appends the waiting
// events in order, oldest first, as soon as the trail takes them.
//
// Each event gets its id (and time) before the first attempt, so a retry
// of an append whose outcome was unknown, or a drain cut off between the
// append and the file's removal, appends nothing twice: the stores are
// idempotent on the id, and the drainer treats an id already in the trail
// as delivered.
//
// Files: one per event, named by a 20-digit sequence number with suffix
// ".evt", framed as "LGS1", the payload's length (uint32, big-endian), its
// CRC-32C (uint32, big-endian), then the payload (the event's JSON). A file
// whose frame does not check (a torn write at a crash) is renamed to
// ".corrupt", counted and logged, and never appended. An event the trail
// rejects outright (not unavailable, not already there) is renamed to
// ".rejected" the same way.
type Spool struct {
	cfg SpoolConfig
	log *slog.Logger
	now func() time.Time

	// mu guards the fields below. It is held while a file is written, so
	// the order of the files is the order of Record calls.
	mu      sync.Mutex
	pending []spooled // oldest first
	next    uint64    // sequence number of the next file
	stats   SpoolStats

	kick chan struct{} // capacity 1: "something to drain"
	quit chan struct{}
	done chan struct{} // closed when the drainer exits
	// drainMu serialises delivery (the drainer and Drain).
	drainMu sync.Mutex
	closing sync.Once
}

type spooled struct {
	n  uint64
	ev Event
}

const (
	spoolMagic  = "LGS1"
	spoolHeader = 12
	spoolSuffix = ".evt"
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrSpoolFull is returned by Record when the spool holds MaxRecords.
var ErrSpoolFull = errors.New("audit spool full")

// OpenSpool loads the events a previous run left in cfg.Dir (quarantining
// corrupt files) and starts the drainer; Close stops it.
func OpenSpool(cfg SpoolConfig) (*Spool, error) {
	if cfg.Dir == "" || cfg.Trail == nil {
		return nil, errors.New("audit spool: Dir and Trail are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 200 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Second
	}
	if cfg.MaxRecords <= 0 {
		cfg.MaxRecords = 100_000
	}
	if cfg.AppendTimeout <= 0 {
		cfg.AppendTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("audit spool: %w", err)
	}
	s := &Spool{cfg: cfg, log: cfg.Logger, now: cfg.Now, next: 1,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	if err := s.load(); err != nil {
		return nil, err
	}
	if len(s.pending) > 0 {
		s.log.Warn("audit spool holds events from an earlier run; appending them", "events", len(s.pending))
		s.kick <- struct{}{}
	}
	go s.run()
	return s, nil
}

// load reads Dir in file order.
func (s *Spool) load() error {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		base, ok := strings.CutSuffix(name, spoolSuffix)
		if !ok {
			if n, err := strconv.ParseUint(strings.SplitN(name, ".", 2)[0], 10, 64); err == nil && n >= s.next {
				s.next = n + 1 // never reuse a quarantined file's number
			}
			continue
		}
		n, err := strconv.ParseUint(base, 10, 64)
		if err != nil || s.path(n, spoolSuffix) != filepath.Join(s.cfg.Dir, name) {
			continue // not a name the spool writes ("5.evt", "+5.evt")
		}
		if n >= s.next {
			s.next = n + 1
		}
		b, err := os.ReadFile(filepath.Join(s.cfg.Dir, name))
		if err != nil {
			return fmt.Errorf("audit spool: %w", err)
		}
		ev, err := DecodeSpoolRecord(b)
		if err != nil {
			s.stats.Corrupt++
			s.log.Error("audit spool: corrupt record quarantined, not appended", "file", name, "err", err)
			s.quarantine(n, "corrupt")
			continue
		}
		s.pending = append(s.pending, spooled{n: n, ev: ev})
	}
	slices.SortFunc(s.pending, func(a, b spooled) int { return compareUint(a.n, b.n) })
	return nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// EncodeSpoolRecord frames an event as a spool file holds it.
func EncodeSpoolRecord(ev Event) ([]byte, error) {
	payload, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: encode spooled event: %v", ErrInvalid, err)
	}
	out := make([]byte, spoolHeader, spoolHeader+len(payload))
	copy(out, spoolMagic)
	binary.BigEndian.PutUint32(out[4:], uint32(len(payload)))
	binary.BigEndian.PutUint32(out[8:], crc32.Checksum(payload, crcTable))
	return append(out, payload...), nil
}

// DecodeSpoolRecord checks a spool file's frame and decodes its event.
// Numbers in details decode as json.Number, so the event encodes to the
// same bytes it was spooled with (the stores compare them on a retry).
func DecodeSpoolRecord(b []byte) (Event, error) {
	if len(b) < spoolHeader || string(b[:4]) != spoolMagic {
		return Event{}, errors.New("no spool record header")
	}
	n := binary.BigEndian.Uint32(b[4:])
	if uint64(len(b)-spoolHeader) != uint64(n) {
		return Event{}, fmt.Errorf("record says %d bytes, file holds %d (torn write)", n, len(b)-spoolHeader)
	}
	payload := b[spoolHeader:]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(b[8:]) {
		return Event{}, errors.New("checksum mismatch")
	}
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, fmt.Errorf("decode event: %w", err)
	}
	if dec.More() {
		return Event{}, errors.New("trailing data after the event")
	}
	if ev.ID == "" || ev.Time.IsZero() {
		return Event{}, errors.New("event without id or time")
	}
	if err := Validate(&ev); err != nil {
		return Event{}, err
	}
	ev.Seq, ev.PrevHash, ev.Hash = 0, "", ""
	return ev, nil
}

func (s *Spool) path(n uint64, suffix string) string {
	return filepath.Join(s.cfg.Dir, fmt.Sprintf("%020d%s", n, suffix))
}

func (s *Spool) quarantine(n uint64, why string) {
	if err := os.Rename(s.path(n, spoolSuffix), s.path(n, "."+why)); err != nil {
		s.log.Error("audit spool: quarantine", "err", err)
	}
	_ = syncDir(s.cfg.Dir)
}

// Record appends ev to the trail, or, when the trail is unavailable (or
// older events still wait in the spool, which keeps the order), writes it
// to the spool for the drainer. It assigns ev's id and time first. spooled
// says which happened. An error means the event is in neither place (it is
// invalid, or the spool cannot be written or is full).
func (s *Spool) Record(ctx context.Context, ev Event) (out Event, spooled bool, err error) {
	if err := Validate(&ev); err != nil {
		return Event{}, false, err
	}
	if ev.ID == "" {
		ev.ID = NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	ev.Time = ev.Time.UTC()
	s.mu.Lock()
	waiting := len(s.pending) > 0
	s.mu.Unlock()
	if !waiting {
		out, err := s.cfg.Trail.Append(ctx, ev)
		if err == nil {
			return out, false, nil
		}
		if !errors.Is(err, ErrUnavailable) {
			return Event{}, false, err
		}
		s.log.Warn("audit trail unavailable; spooling the event", "action", ev.Action, "err", err)
	}
	if err := s.put(ev); err != nil {
		return Event{}, false, err
	}
	return ev, true, nil
}

// put writes ev to a new fsynced spool file and queues it.
func (s *Spool) put(ev Event) error {
	ev.Details = cloneDetails(ev.Details)
	ev.Details[DetailSpooledAt] = s.now().UTC().Format(time.RFC3339Nano)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= s.cfg.MaxRecords {
		return fmt.Errorf("%w: %d events wait", ErrSpoolFull, len(s.pending))
	}
	b, err := EncodeSpoolRecord(ev)
	if err != nil {
		return err
	}
	// Re-decode so the queued event is exactly what a restart would read.
	queued, err := DecodeSpoolRecord(b)
	if err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	// An event the trail would reject is refused now, while the caller
	// can still keep its own fallback, not quarantined at the drain.
	if _, err := EncodeTail(&queued); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	n := s.next
	s.next++ // also on failure: a name that cannot be written is not retried
	if err := writeSynced(s.path(n, spoolSuffix), b); err != nil {
		return fmt.Errorf("audit spool: %w", err)
	}
	s.pending = append(s.pending, spooled{n: n, ev: queued})
	s.stats.Spooled++
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

func cloneDetails(d map[string]any) map[string]any {
	out := make(map[string]any, len(d)+1)
	for k, v := range d {
		out[k] = v
	}
	return out
}

// writeSynced creates path (it must not exist), writes b, fsyncs the file
// and its directory. On failure it removes what it wrote.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// Pending returns the events waiting in the spool, oldest first.
func (s *Spool) Pending() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.pending))
	for i, p := range s.pending {
		out[i] = p.ev
	}
	return out
}

// Stats returns the spool's counters.
func (s *Spool) Stats() SpoolStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Depth = len(s.pending)
	if st.Depth > 0 {
		if t, err := time.Parse(time.RFC3339Nano, fmt.Sprint(s.pending[0].ev.Details[DetailSpooledAt])); err == nil {
			st.Oldest = t
		}
	}
	return st
}

// Drain delivers waiting events until the spool is empty or the trail
// fails; it returns the failure (wrapping ErrUnavailable) or nil.
func (s *Spool) Drain(ctx context.Context) error {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	for {
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.stats.Failing = ""
			s.mu.Unlock()
			return nil
		}
		p := s.pending[0]
		s.mu.Unlock()
		delivered, err := s.deliver(ctx, p)
		if err != nil {
			s.mu.Lock()
			s.stats.Failing = err.Error()
			s.mu.Unlock()
			return err
		}
		if delivered {
			if err := os.Remove(s.path(p.n, spoolSuffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				s.log.Error("audit spool: remove a delivered record (it will be appended once more, idempotently)", "err", err)
			}
			_ = syncDir(s.cfg.Dir)
		} else {
			s.quarantine(p.n, "rejected")
		}
		s.mu.Lock()
		s.pending = s.pending[1:]
		if delivered {
			s.stats.Drained++
		}
		s.mu.Unlock()
	}
}

// deliver appends one spooled event. An event the trail refuses for
// another reason than unavailability counts as delivered if its id is
// already in the trail (an earlier attempt landed); otherwise deliver
// returns false and the caller quarantines it as rejected.
func (s *Spool) deliver(ctx context.Context, p spooled) (bool, error) {
	actx, cancel := context.WithTimeout(ctx, s.cfg.AppendTimeout)
	defer cancel()
	_, err := s.cfg.Trail.Append(actx, p.ev)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
		return false, fmt.Errorf("audit spool: %w", err)
	}
	_, gerr := s.cfg.Trail.Get(actx, p.ev.ID)
	switch {
	case gerr == nil:
		s.log.Info("audit spool: event already in the trail", "action", p.ev.Action)
		return true, nil
	case !errors.Is(gerr, ErrNotFound):
		return false, fmt.Errorf("audit spool: %w", gerr)
	}
	s.log.Error("audit spool: the trail rejected a spooled event; quarantined", "action", p.ev.Action, "err", err)
	return false, nil
}

// run is the drainer: it owns retries and exits on Close.
func (s *Spool) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := s.cfg.RetryMin
	var retry <-chan time.Time
	for {
		select {
		case <-s.quit:
			return
		case <-s.kick:
		case <-retry:
		}
		retry = nil
		if err := s.Drain(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("audit spool: trail still unavailable; will retry", "in", backoff, "err", err)
			retry = time.After(backoff)
			backoff = min(2*backoff, s.cfg.RetryMax)
			continue
		}
		backoff = s.cfg.RetryMin
	}
}

// Close stops the drainer; waiting events stay on disk for the next start.
func (s *Spool) Close() error {
	s.closing.Do(func() { close(s.quit) })
	<-s.done
	return nil
}

var _ io.Closer = (*Spool)(nil)

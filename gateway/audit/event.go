package audit

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// SchemaVersion is the version of the event record format written by Append.
const SchemaVersion = 1

var (
	// ErrNotFound means no event has the requested id.
	ErrNotFound = errors.New("audit: not found")
	// ErrUnavailable means the store could not durably commit (or read); callers
	// must fail closed (HTTP 503) and not perform the audited action.
	ErrUnavailable = errors.New("audit: store unavailable")
	// ErrTampered means verification found at least one integrity problem.
	ErrTampered = errors.New("audit: trail tampered")
	// ErrInvalid means an event or query was rejected before any write.
	ErrInvalid = errors.New("audit: invalid")
)

// Actor kinds.
const (
	ActorUser   = "user"
	ActorSource = "source"
	ActorSystem = "system"
)

// Outcomes.
const (
	OutcomeSuccess     = "success"
	OutcomeDenied      = "denied"
	OutcomeFailure     = "failure"
	OutcomeError       = "error"
	OutcomeInterrupted = "interrupted"
)

// Actor is who caused an event.
type Actor struct {
	Kind    string   `json:"kind"` // "user", "source" or "system"
	Issuer  string   `json:"issuer,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Email   string   `json:"email,omitempty"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	ID      string   `json:"id,omitempty"` // source id for sources
}

// Target is what an event is about.
type Target struct {
	RequestID string `json:"request_id,omitempty"`
	GrantID   string `json:"grant_id,omitempty"`
	ReviewID  string `json:"review_id,omitempty"`
	SourceID  string `json:"source_id,omitempty"`
	Service   string `json:"service,omitempty"`
	Env       string `json:"env,omitempty"`
}

// Event is one audit record. ID, Seq, Schema, PrevHash and Hash are assigned
// by Append; Time is assigned when zero.
type Event struct {
	ID             string         `json:"id"`
	Seq            int64          `json:"seq"`
	Time           time.Time      `json:"time"`
	Action         string         `json:"action"`
	Actor          Actor          `json:"actor"`
	SourceAddr     string         `json:"source_addr,omitempty"`
	UserAgent      string         `json:"user_agent,omitempty"`
	RequestID      string         `json:"request_id,omitempty"`
	Target         Target         `json:"target"` // always present in API answers ({} when none); stored records omit it when empty
	Outcome        string         `json:"outcome"`
	Reason         string         `json:"reason,omitempty"`
	DecisionID     string         `json:"decision_id,omitempty"`
	PolicyRevision string         `json:"policy_revision,omitempty"`
	Details        map[string]any `json:"details,omitempty"`
	PrevHash       string         `json:"prev_hash"` // hex SHA-256
	Hash           string         `json:"hash"`      // hex SHA-256
	Schema         int            `json:"schema"`
}

// recordTail is the part of the canonical record that does not depend on the
// chain position. The writer prefixes it with seq and prev_hash, so the
// record always begins `{"seq":N,"prev_hash":"<64 hex>",` which lets Verify
// read both without a JSON decoder.
type recordTail struct {
	ID             string         `json:"id"`
	Schema         int            `json:"schema"`
	Time           time.Time      `json:"time"`
	Action         string         `json:"action"`
	Actor          Actor          `json:"actor"`
	SourceAddr     string         `json:"source_addr,omitempty"`
	UserAgent      string         `json:"user_agent,omitempty"`
	RequestID      string         `json:"request_id,omitempty"`
	Target         Target         `json:"target,omitzero"`
	Outcome        string         `json:"outcome"`
	Reason         string         `json:"reason,omitempty"`
	DecisionID     string         `json:"decision_id,omitempty"`
	PolicyRevision string         `json:"policy_revision,omitempty"`
	Details        map[string]any `json:"details,omitempty"`
}

const maxActionLen = 128

// MaxRecordBytes bounds one event's canonical encoding: an audit record holds
// identifiers, counts and digests, never log content.
const MaxRecordBytes = 64 << 10

func validate(ev *Event) error {
	switch {
	case ev.Action == "":
		return fmt.Errorf("%w: action is required", ErrInvalid)
	case len(ev.Action) > maxActionLen:
		return fmt.Errorf("%w: action longer than %d bytes", ErrInvalid, maxActionLen)
	}
	switch ev.Actor.Kind {
	case ActorUser, ActorSource, ActorSystem:
	default:
		return fmt.Errorf("%w: actor kind %q", ErrInvalid, ev.Actor.Kind)
	}
	switch ev.Outcome {
	case OutcomeSuccess, OutcomeDenied, OutcomeFailure, OutcomeError, OutcomeInterrupted:
	default:
		return fmt.Errorf("%w: outcome %q", ErrInvalid, ev.Outcome)
	}
	return nil
}

// encodeTail returns the canonical bytes of ev without seq and prev_hash,
// starting with '{'. HTML escaping is off so the stored bytes read naturally;
// it does not matter for integrity, which hashes whatever bytes are stored.
func encodeTail(ev *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(recordTail{
		ID: ev.ID, Schema: ev.Schema, Time: ev.Time, Action: ev.Action, Actor: ev.Actor,
		SourceAddr: ev.SourceAddr, UserAgent: ev.UserAgent, RequestID: ev.RequestID,
		Target: ev.Target, Outcome: ev.Outcome, Reason: ev.Reason, DecisionID: ev.DecisionID,
		PolicyRevision: ev.PolicyRevision, Details: ev.Details,
	})
	if err != nil {
		return nil, fmt.Errorf("%w: encode event: %v", ErrInvalid, err)
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) < 2 || b[0] != '{' {
		return nil, fmt.Errorf("%w: encode event: unexpected encoding", ErrInvalid)
	}
	if len(b) > MaxRecordBytes {
		return nil, fmt.Errorf("%w: event encodes to %d bytes, limit %d", ErrInvalid, len(b), MaxRecordBytes)
	}
	return b, nil
}

// buildRecord prefixes a tail with the chain position.
func buildRecord(seq int64, prev [32]byte, tail []byte) []byte {
	rec := make([]byte, 0, len(tail)+100)
	rec = append(rec, `{"seq":`...)
	rec = strconv.AppendInt(rec, seq, 10)
	rec = append(rec, `,"prev_hash":"`...)
	rec = hex.AppendEncode(rec, prev[:])
	rec = append(rec, `",`...)
	rec = append(rec, tail[1:]...)
	return rec
}

// recordHead extracts seq and prev_hash from a record. It takes the fast path
// for records written by this package and falls back to a JSON decoder for
// anything else (a forged or foreign record).
func recordHead(rec []byte) (seq int64, prev [32]byte, err error) {
	const p1, p2 = `{"seq":`, `,"prev_hash":"`
	if bytes.HasPrefix(rec, []byte(p1)) {
		rest := rec[len(p1):]
		i := 0
		for i < len(rest) && i < 20 && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		canonical := i > 0 && (rest[0] != '0' || i == 1) // JSON allows no leading zeros
		if canonical && bytes.HasPrefix(rest[i:], []byte(p2)) {
			h := rest[i+len(p2):]
			if len(h) > 64 && h[64] == '"' && isLowerHex(h[:64]) {
				n, perr := strconv.ParseInt(string(rest[:i]), 10, 64)
				_, herr := hex.Decode(prev[:], h[:64])
				if perr == nil && herr == nil {
					return n, prev, nil
				}
			}
		}
	}
	var v struct {
		Seq      *int64 `json:"seq"`
		PrevHash string `json:"prev_hash"`
	}
	if err := json.Unmarshal(rec, &v); err != nil {
		return 0, prev, fmt.Errorf("decode record: %w", err)
	}
	if v.Seq == nil {
		return 0, prev, errors.New("decode record: no seq")
	}
	b, err := hex.DecodeString(v.PrevHash)
	if err != nil || len(b) != 32 {
		return 0, prev, errors.New("decode record: bad prev_hash")
	}
	copy(prev[:], b)
	return *v.Seq, prev, nil
}

// decodeRecord turns a stored record and its hash into an Event.
func decodeRecord(rec, hash []byte) (Event, error) {
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, fmt.Errorf("decode record: %w", err)
	}
	ev.Hash = hex.EncodeToString(hash)
	return ev, nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newEventID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return "evt_" + idEncoding.EncodeToString(b[:])
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

package audit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// This file is the one definition of the stored audit record, shared by
// every store (SQLite here, Redis in gateway/cluster): validation, the
// canonical encoding, the chain position prefix, the chain hash and event
// ids. A store builds a record with EncodeTail and BuildRecord and links it
// with ChainHash; Verify reads it back with the same functions.

const maxActionLen = 128

// MaxRecordBytes bounds one event's canonical encoding: an audit record holds
// identifiers, counts and digests, never log content.
const MaxRecordBytes = 64 << 10

func Validate(ev *Event) error {
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

// EncodeTail returns the canonical bytes of ev without seq and prev_hash,
// starting with '{'. HTML escaping is off so the stored bytes read naturally;
// it does not matter for integrity, which hashes whatever bytes are stored.
func EncodeTail(ev *Event) ([]byte, error) {
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

// BuildRecord prefixes a tail with the chain position.
func BuildRecord(seq int64, prev [32]byte, tail []byte) []byte {
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
			if len(h) > 64 && h[64] == '"' && decodeLowerHex(prev[:], h[:64]) {
				if n, err := strconv.ParseInt(string(rest[:i]), 10, 64); err == nil {
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

// DecodeRecord turns a stored record and its hash into an Event.
func DecodeRecord(rec, hash []byte) (Event, error) {
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(rec))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		return Event{}, fmt.Errorf("decode record: %w", err)
	}
	ev.Hash = hex.EncodeToString(hash)
	return ev, nil
}

// IDEncoding is the alphabet of every id loggate makes (lower-case base32,
// no padding): safe in URLs, file names and case-insensitive places.
var IDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewEventID returns a fresh event id: "evt_" and 128 random bits.
func NewEventID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return "evt_" + IDEncoding.EncodeToString(b[:])
}

// lowerHexValue maps '0'-'9' and 'a'-'f' to their values and every other
// byte to 0xff.
var lowerHexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := byte(0); i < 10; i++ {
		t['0'+i] = i
	}
	for i := byte(0); i < 6; i++ {
		t['a'+i] = 10 + i
	}
	return t
}()

// decodeLowerHex decodes src (lower-case hex, 2*len(dst) bytes) into dst
// and reports whether src was exactly that.
func decodeLowerHex(dst, src []byte) bool {
	if len(src) != 2*len(dst) {
		return false
	}
	bad := byte(0)
	for i := range dst {
		hi, lo := lowerHexValue[src[2*i]], lowerHexValue[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	return bad&0xf0 == 0
}

// ChainHash is the chain link: SHA-256(prev hash || record), the first prev
// hash being 32 zero bytes.
func ChainHash(prev [32]byte, rec []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(rec)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

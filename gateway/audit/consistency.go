package audit

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// ConsistencyProof shows that the tree of size From is a prefix of the tree
// of size To (RFC 6962 section 2.1.2 / RFC 9162 section 2.1.4, as
// golang.org/x/mod/sumdb/tlog computes and checks them): whoever kept a
// checkpoint of size From learns that the trail only grew since. Checkpoint
// is the newest signed checkpoint, whose size is at least To; when To is
// its size, ToRoot is its signed root.
type ConsistencyProof struct {
	From       int64      `json:"from"`
	To         int64      `json:"to"`
	FromRoot   string     `json:"from_root"` // base64: root of the tree of size From
	ToRoot     string     `json:"to_root"`   // base64: root of the tree of size To
	Hashes     []string   `json:"hashes"`    // base64, as tlog.TreeProof
	Checkpoint Checkpoint `json:"checkpoint"`
}

// RangeError is a consistency proof request outside what the trail holds;
// it wraps ErrInvalid. Param names the offending query parameter.
type RangeError struct {
	Param string // "from" or "to"
	Msg   string // says what is wrong, naming Param
}

func (e *RangeError) Error() string { return e.Msg }

// Is makes a RangeError match ErrInvalid.
func (e *RangeError) Is(target error) bool { return target == ErrInvalid }

// CheckProofRange validates a requested proof range against a signed tree
// of the given size: 1 <= from <= to <= size. from=0 is refused: every tree
// extends the empty tree, and RFC 6962 defines no proof from it.
func CheckProofRange(from, to, size int64) error {
	switch {
	case from < 1:
		return &RangeError{"from", fmt.Sprintf("from must be at least 1 (got %d): every trail extends the empty one, no proof needed", from)}
	case to < 1:
		return &RangeError{"to", fmt.Sprintf("to must be at least 1 (got %d)", to)}
	case from > to:
		return &RangeError{"from", fmt.Sprintf("from (%d) must not exceed to (%d)", from, to)}
	case to > size:
		return &RangeError{"to", fmt.Sprintf("to (%d) is beyond the signed trail size %d", to, size)}
	}
	return nil
}

// ProveConsistency builds the proof from..to over the stored tree hashes hr
// of the tree cp signs. Both stores call it on one consistent view (cp read
// first; stored tree hashes never change).
func ProveConsistency(cp Checkpoint, from, to int64, hr tlog.HashReader) (ConsistencyProof, error) {
	if err := CheckProofRange(from, to, cp.Size); err != nil {
		return ConsistencyProof{}, err
	}
	proof, err := tlog.ProveTree(to, from, hr)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", storeErr(err))
	}
	fromRoot, err := tlog.TreeHash(from, hr)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", storeErr(err))
	}
	toRoot, err := tlog.TreeHash(to, hr)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("consistency proof: %w", storeErr(err))
	}
	if to == cp.Size {
		if signed, err := cp.Root(); err != nil || signed != toRoot {
			return ConsistencyProof{}, fmt.Errorf("consistency proof: %w: stored tree hashes disagree with the signed checkpoint", ErrTampered)
		}
	}
	p := ConsistencyProof{From: from, To: to, FromRoot: b64(fromRoot), ToRoot: b64(toRoot),
		Hashes: make([]string, len(proof)), Checkpoint: cp}
	for i, h := range proof {
		p.Hashes[i] = b64(h)
	}
	return p, nil
}

// storeErr keeps ErrTampered (a missing or short stored hash) and calls
// anything else a read failure.
func storeErr(err error) error {
	if errors.Is(err, ErrTampered) || errors.Is(err, ErrUnavailable) {
		return err
	}
	return unavailable("read tree", err)
}

func b64(h tlog.Hash) string { return base64.StdEncoding.EncodeToString(h[:]) }

// DecodeHash decodes a base64 tree hash.
func DecodeHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%w: malformed hash", ErrInvalid)
	}
	copy(h[:], b)
	return h, nil
}

// TreeProof decodes Hashes.
func (p ConsistencyProof) TreeProof() (tlog.TreeProof, error) {
	out := make(tlog.TreeProof, len(p.Hashes))
	for i, s := range p.Hashes {
		h, err := DecodeHash(s)
		if err != nil {
			return nil, fmt.Errorf("%w: proof hash %d", ErrInvalid, i)
		}
		out[i] = h
	}
	return out, nil
}

// Check checks the proof against roots the caller trusts (a witness's stored
// checkpoint for From, a freshly verified signed checkpoint for To), not the
// roots the proof carries. A proof that does not hold wraps ErrTampered.
func (p ConsistencyProof) Check(fromRoot, toRoot tlog.Hash) error {
	if p.From < 1 || p.From > p.To {
		return fmt.Errorf("%w: consistency proof range %d..%d", ErrInvalid, p.From, p.To)
	}
	proof, err := p.TreeProof()
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, p.To, toRoot, p.From, fromRoot); err != nil {
		return fmt.Errorf("%w: the tree of size %d is not a prefix of the tree of size %d: %v", ErrTampered, p.From, p.To, err)
	}
	return nil
}

// VerifyConsistency checks p offline with the roots it carries: the
// checkpoint's signature under one of verifierKeys, that ToRoot is the
// signed root when To is the checkpoint's size, and the proof itself.
func VerifyConsistency(p ConsistencyProof, verifierKeys ...string) error {
	cp, err := ParseCheckpoint(p.Checkpoint.Bytes(), verifierKeys...)
	if err != nil {
		return fmt.Errorf("verify consistency: %w", err)
	}
	if p.To > cp.Size || (p.To == cp.Size && p.ToRoot != cp.RootHash) {
		return fmt.Errorf("verify consistency: %w: proof does not match its checkpoint", ErrTampered)
	}
	fromRoot, err := DecodeHash(p.FromRoot)
	if err != nil {
		return fmt.Errorf("verify consistency: from_root: %w", err)
	}
	toRoot, err := DecodeHash(p.ToRoot)
	if err != nil {
		return fmt.Errorf("verify consistency: to_root: %w", err)
	}
	if err := p.Check(fromRoot, toRoot); err != nil {
		return fmt.Errorf("verify consistency: %w", err)
	}
	return nil
}

// Consistency returns the proof that the tree of size from is a prefix of
// the tree of size to, with the newest signed checkpoint, read in one
// transaction. A range outside the trail is a *RangeError.
func (s *Store) Consistency(ctx context.Context, from, to int64) (ConsistencyProof, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("audit consistency: %w", unavailable("begin", err))
	}
	defer tx.Rollback()
	cp, err := s.readHead(ctx, tx)
	if err != nil {
		return ConsistencyProof{}, fmt.Errorf("audit consistency: %w", err)
	}
	return ProveConsistency(cp, from, to, &hashReader{ctx: ctx, q: tx})
}

package cluster

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/loggate/loggate/gateway/audit"
)

// The Redis trail's Merkle tree (RFC 6962, as golang.org/x/mod/sumdb/tlog
// stores it) lives in the hash <p>audit:tree (storage index -> 32 raw
// bytes). Append computes the hashes record n adds and the new root, signs
// a checkpoint for it, and the append script writes hashes, checkpoint
// (head field "cp") and record together behind the chain head's
// check-and-set: a tree hash is written once, by the append that won.
// A trail begun before the tree existed (head without field "tree") keeps
// appending without one; Proof and LatestCheckpoint say so.

// LoadSigningKey reads an Ed25519 checkpoint signing key file, as
// audit.LoadPrivateKey does. Every replica loads the same file.
func LoadSigningKey(path string) (ed25519.PrivateKey, error) { return audit.LoadPrivateKey(path) }

// VerifierKey returns the note verifier key of the checkpoint signing key
// (empty without one), for audit.ParseCheckpoint and audit.VerifyInclusion.
func (a *Audit) VerifierKey() string {
	if a.signer == nil {
		return ""
	}
	return a.signer.VerifierKey()
}

func (a *Audit) treeKey() string { return a.prefix + "audit:tree" }

// treeReader reads stored tree hashes from Redis, overlaid with hashes
// about to be written.
type treeReader struct {
	ctx     context.Context
	a       *Audit
	overlay map[int64]tlog.Hash
}

func (r *treeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var fields []string
	var at []int
	for i, idx := range indexes {
		if h, ok := r.overlay[idx]; ok {
			out[i] = h
			continue
		}
		fields = append(fields, strconv.FormatInt(idx, 10))
		at = append(at, i)
	}
	if len(fields) == 0 {
		return out, nil
	}
	vals, err := r.a.c.HMGet(r.ctx, r.a.treeKey(), fields...).Result()
	if err != nil {
		return nil, unavailable("read tree", err)
	}
	for j, v := range vals {
		s, ok := v.(string)
		if !ok || len(s) != tlog.HashSize {
			return nil, fmt.Errorf("%w: tree hash %s missing or malformed", audit.ErrTampered, fields[j])
		}
		copy(out[at[j]][:], s)
	}
	return out, nil
}

// treeAppend computes the tree hashes record rec adds as leaf n (0-based)
// and, with a signing key, the checkpoint for the tree of size n+1. It
// returns the script arguments: the note and index/hash pairs.
func (a *Audit) treeAppend(ctx context.Context, n int64, rec []byte) (string, []any, error) {
	r := &treeReader{ctx: ctx, a: a}
	hs, err := tlog.StoredHashes(n, rec, r)
	if err != nil {
		return "", nil, fmt.Errorf("tree hashes: %w", err)
	}
	start := tlog.StoredHashIndex(0, n)
	r.overlay = make(map[int64]tlog.Hash, len(hs))
	pairs := make([]any, 0, 2*len(hs))
	for i, h := range hs {
		r.overlay[start+int64(i)] = h
		pairs = append(pairs, start+int64(i), string(h[:]))
	}
	if a.signer == nil {
		return "", pairs, nil
	}
	root, err := tlog.TreeHash(n+1, r)
	if err != nil {
		return "", nil, fmt.Errorf("tree root: %w", err)
	}
	cp, err := a.signer.Sign(n+1, root, a.now())
	if err != nil {
		return "", nil, err
	}
	return cp.Note, pairs, nil
}

// errNoTree explains why a trail has no proofs.
var errNoTree = fmt.Errorf("%w: the trail was begun before the Merkle tree was kept in Redis", ErrNotSupported)

// LatestCheckpoint returns the signed checkpoint of the current tree (one
// is signed with every append; for an empty trail, one is signed now).
func (a *Audit) LatestCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	if a.signer == nil {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w: no signing key configured", ErrNotSupported)
	}
	h, err := a.c.HMGet(ctx, a.headKey(), "seq", "tree", "cp").Result()
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", unavailable("read head", err))
	}
	seqStr, _ := h[0].(string)
	tree, _ := h[1].(string)
	cp, _ := h[2].(string)
	if seqStr == "" || seqStr == "0" {
		root, err := tlog.TreeHash(0, &treeReader{ctx: ctx, a: a})
		if err != nil {
			return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
		}
		empty, err := a.signer.Sign(0, root, a.now())
		if err != nil {
			return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
		}
		cp = empty.Note
	} else if tree != "1" {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", errNoTree)
	} else if cp == "" {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w: tree without a signed checkpoint", audit.ErrTampered)
	}
	c, err := audit.ParseCheckpoint([]byte(cp), a.signer.VerifierKey())
	if err != nil {
		return audit.Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return c, nil
}

// Proof returns an inclusion proof for the event with the given id against
// the latest signed checkpoint; audit.VerifyInclusion checks it offline.
func (a *Audit) Proof(ctx context.Context, id string) (audit.InclusionProof, error) {
	if a.signer == nil {
		return audit.InclusionProof{}, fmt.Errorf("audit proof: %w: no signing key configured", ErrNotSupported)
	}
	// The event first, then the checkpoint: a checkpoint read later covers it.
	ev, err := a.Get(ctx, id)
	if err != nil {
		return audit.InclusionProof{}, fmt.Errorf("audit proof: %w", err)
	}
	id0 := strconv.FormatInt(ev.Seq, 10) + "-0"
	ms, err := a.c.XRange(ctx, a.streamKey(), id0, id0).Result()
	if err != nil || len(ms) != 1 {
		return audit.InclusionProof{}, fmt.Errorf("audit proof: %w", unavailable("read", errors.Join(err, errors.New("record vanished"))))
	}
	s, err := parseStored(ms[0])
	if err != nil {
		return audit.InclusionProof{}, err
	}
	cp, err := a.LatestCheckpoint(ctx)
	if err != nil {
		return audit.InclusionProof{}, fmt.Errorf("audit proof: %w", err)
	}
	if s.seq < 1 || s.seq > cp.Size {
		return audit.InclusionProof{}, fmt.Errorf("audit proof: %w: event seq %d outside signed tree of size %d", audit.ErrTampered, s.seq, cp.Size)
	}
	proof, err := tlog.ProveRecord(cp.Size, s.seq-1, &treeReader{ctx: ctx, a: a})
	if err != nil {
		return audit.InclusionProof{}, fmt.Errorf("audit proof: %w", err)
	}
	lh := tlog.RecordHash(s.rec)
	p := audit.InclusionProof{EventID: id, Seq: s.seq, LeafIndex: s.seq - 1, TreeSize: cp.Size, RootHash: cp.RootHash,
		LeafHash: base64.StdEncoding.EncodeToString(lh[:]), Hashes: make([]string, len(proof)), Record: s.rec, Checkpoint: cp}
	for i, h := range proof {
		p.Hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return p, nil
}

// Consistency returns the proof that the tree of size from is a prefix of
// the tree of size to, with the latest signed checkpoint (read first: the
// tree hashes it covers were written before it and never change).
func (a *Audit) Consistency(ctx context.Context, from, to int64) (audit.ConsistencyProof, error) {
	cp, err := a.LatestCheckpoint(ctx)
	if err != nil {
		return audit.ConsistencyProof{}, fmt.Errorf("audit consistency: %w", err)
	}
	return audit.ProveConsistency(cp, from, to, &treeReader{ctx: ctx, a: a})
}

// VerifierKeys returns the verifier key of the replicas' signing key (none
// without one), for GET /api/v1/audit/keys.
func (a *Audit) VerifierKeys() []string {
	if a.signer == nil {
		return []string{}
	}
	return []string{a.signer.VerifierKey()}
}

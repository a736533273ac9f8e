package audit

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// InclusionProof shows that one event is leaf LeafIndex (= seq-1) of the tree
// of size TreeSize whose root is signed in Checkpoint. It is verifiable
// offline with VerifyInclusion and the store's verifier key: the leaf hash is
// tlog.RecordHash(Record) and the proof checks with tlog.CheckRecord.
type InclusionProof struct {
	EventID    string     `json:"event_id"`
	Seq        int64      `json:"seq"`
	LeafIndex  int64      `json:"leaf_index"`
	TreeSize   int64      `json:"tree_size"`
	RootHash   string     `json:"root_hash"` // base64
	LeafHash   string     `json:"leaf_hash"` // base64
	Hashes     []string   `json:"hashes"`    // base64, as tlog.RecordProof
	Record     []byte     `json:"record"`    // the event's canonical bytes (base64 in JSON)
	Checkpoint Checkpoint `json:"checkpoint"`
}

// RecordProof decodes Hashes.
func (p InclusionProof) RecordProof() (tlog.RecordProof, error) {
	out := make(tlog.RecordProof, len(p.Hashes))
	for i, s := range p.Hashes {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != tlog.HashSize {
			return nil, fmt.Errorf("%w: proof hash %d", ErrInvalid, i)
		}
		copy(out[i][:], b)
	}
	return out, nil
}

// Proof returns an inclusion proof for the event with the given id against
// the current signed head.
func (s *Store) Proof(ctx context.Context, id string) (InclusionProof, error) {
	// One read transaction gives a consistent snapshot of head, event and tree.
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("audit proof: %w", unavailable("begin", err))
	}
	defer tx.Rollback()
	var seq int64
	var rec []byte
	err = tx.QueryRowContext(ctx, `SELECT seq, record FROM events WHERE id = ?`, id).Scan(&seq, &rec)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return InclusionProof{}, fmt.Errorf("audit proof %q: %w", id, ErrNotFound)
	case err != nil:
		return InclusionProof{}, fmt.Errorf("audit proof: %w", unavailable("query", err))
	case len(rec) == 0:
		return InclusionProof{}, fmt.Errorf("audit proof %q: %w: purged by retention", id, ErrNotFound)
	}
	cp, err := s.readHead(ctx, tx)
	if err != nil {
		return InclusionProof{}, fmt.Errorf("audit proof: %w", err)
	}
	if seq < 1 || seq > cp.Size {
		return InclusionProof{}, fmt.Errorf("audit proof: %w: event seq %d outside signed tree of size %d", ErrTampered, seq, cp.Size)
	}
	leaf := seq - 1
	proof, err := tlog.ProveRecord(cp.Size, leaf, &hashReader{ctx: ctx, q: tx})
	if err != nil {
		return InclusionProof{}, fmt.Errorf("audit proof: %w", unavailable("prove", err))
	}
	lh := tlog.RecordHash(rec)
	p := InclusionProof{
		EventID: id, Seq: seq, LeafIndex: leaf, TreeSize: cp.Size, RootHash: cp.RootHash,
		LeafHash: base64.StdEncoding.EncodeToString(lh[:]), Hashes: make([]string, len(proof)),
		Record: rec, Checkpoint: cp,
	}
	for i, h := range proof {
		p.Hashes[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return p, nil
}

// VerifyInclusion checks p offline: the checkpoint's signature under one of
// verifierKeys, that it states p's tree size and root, that the record sits
// at seq LeafIndex+1, and the Merkle path (tlog.CheckRecord).
func VerifyInclusion(p InclusionProof, verifierKeys ...string) error {
	cp, err := ParseCheckpoint(p.Checkpoint.Bytes(), verifierKeys...)
	if err != nil {
		return fmt.Errorf("verify inclusion: %w", err)
	}
	if cp.Size != p.TreeSize || cp.RootHash != p.RootHash {
		return fmt.Errorf("verify inclusion: %w: proof does not match its checkpoint", ErrTampered)
	}
	seq, _, err := recordHead(p.Record)
	if err != nil || seq != p.LeafIndex+1 {
		return fmt.Errorf("verify inclusion: %w: record is not at leaf %d", ErrTampered, p.LeafIndex)
	}
	root, err := cp.Root()
	if err != nil {
		return fmt.Errorf("verify inclusion: %w", err)
	}
	proof, err := p.RecordProof()
	if err != nil {
		return fmt.Errorf("verify inclusion: %w", err)
	}
	if err := tlog.CheckRecord(proof, p.TreeSize, root, p.LeafIndex, tlog.RecordHash(p.Record)); err != nil {
		return fmt.Errorf("verify inclusion: %w: %v", ErrTampered, err)
	}
	return nil
}

// LatestCheckpoint returns the newest signed checkpoint (the head, re-signed
// with every commit and every periodic checkpoint).
func (s *Store) LatestCheckpoint(ctx context.Context) (Checkpoint, error) {
	cp, err := s.readHead(ctx, s.rdb)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	return cp, nil
}

func (s *Store) readHead(ctx context.Context, q rowQuerier) (Checkpoint, error) {
	var note string
	err := q.QueryRowContext(ctx, `SELECT note FROM head WHERE id = 1`).Scan(&note)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrTampered, errNoCheckpoint)
	case err != nil:
		return Checkpoint{}, unavailable("read head", err)
	}
	return ParseCheckpoint([]byte(note), s.VerifierKeys()...)
}

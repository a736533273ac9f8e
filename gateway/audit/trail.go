package audit

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"
)

// Trail is one consistent snapshot of a stored audit trail, as VerifyTrail
// reads it. Every store implements it over its own storage (SQLite: one read
// transaction; Redis: the head, the stream's end and the index sizes read
// atomically, the scan bounded by them), so every check is written once, in
// VerifyTrail, and holds for every store.
type Trail interface {
	// Snapshot returns what the store keeps beside the events. It is called
	// once, before Rows.
	Snapshot(ctx context.Context) (Snapshot, error)
	// Rows calls fn with every stored event of the snapshot, in seq order,
	// in batches; fn may keep the batch. An error from fn stops the scan and
	// is returned.
	Rows(ctx context.Context, fn func([]StoredRow) error) error
	// TreeHashes reads the stored Merkle tree hashes (tlog storage indexes),
	// the hashes inclusion and consistency proofs are built from.
	TreeHashes(ctx context.Context) tlog.HashReader
}

// RowRecycler is a Trail whose Rows batches can be handed back once the
// caller keeps nothing of them (no slice, no pointer into them), so that
// the next batches reuse their memory. The verifier does so.
type RowRecycler interface {
	RecycleRows([]StoredRow)
}

// IDIndex is implemented by a Trail that keeps an event id -> seq index
// apart from the rows (Redis' audit:ids hash). VerifyTrail looks up every
// record's id in it.
type IDIndex interface {
	// IndexedSeqs returns the seq indexed for each id; 0 when it is absent.
	IndexedSeqs(ctx context.Context, ids []string) ([]int64, error)
}

// Snapshot is what a store keeps beside the events.
type Snapshot struct {
	// Head is the signed note covering exactly the trail; nil when missing.
	Head []byte
	// HeadOptional: a missing Head is not a problem (a Redis trail whose
	// replicas sign nothing).
	HeadOptional bool
	// Checkpoints are the stored checkpoint history, oldest first.
	Checkpoints []StoredCheckpoint
	// PurgeHorizon is seq_to of the newest valid retention.purged event:
	// records at or below it may be empty.
	PurgeHorizon int64
	// ChainHead is the chain tip the store keeps apart from the rows (Redis'
	// head seq and hash), nil when it keeps none.
	ChainHead *ChainHead
	// NoTree: the trail keeps no Merkle tree hashes (a Redis trail begun
	// before it did); rows have no Tree and the tree checks are skipped.
	NoTree bool
	// Indexed is the number of entries in the IDIndex, -1 without one.
	Indexed int64
}

// ChainHead is a chain tip stored apart from the rows.
type ChainHead struct {
	Seq  int64
	Hash string // hex, as stored
}

// StoredCheckpoint is one stored checkpoint of the history.
type StoredCheckpoint struct {
	Name string // how problems name it, e.g. "checkpoint 12"
	Note []byte // the signed note
	// Columns kept beside the note, checked against it; nil when not kept.
	Size, TimeNS *int64
}

// StoredRow is one stored event as VerifyTrail reads it.
type StoredRow struct {
	Seq    int64  // the position the store keeps it at
	Record []byte // the stored record (empty when retention purged it)
	Hash   []byte // the stored chain hash (raw 32 bytes)
	// Tree is the concatenation of the stored tree hashes leaf Seq-1 made
	// (tlog.StoredHashes order); nil when missing.
	Tree []byte
	// Columns are the search columns stored beside the record; nil when the
	// store keeps none.
	Columns *Columns
}

// Columns are the copies of record fields a store keeps for search. Each
// must equal what the record says (VerifyTrail checks; Search re-checks the
// record, so a column can only narrow a query, never change what is shown).
type Columns struct {
	ID              string
	TimeNS          int64
	Action          string
	Outcome         string
	ActorSubject    string
	ActorEmail      string
	RequestID       string
	TargetRequestID string
	GrantID         string
	Service         string
	Env             string
}

// VerifyOptions configures VerifyTrail.
type VerifyOptions struct {
	// Keys are the trusted note verifier keys. Empty: signatures are not
	// checked (sizes and roots still are), for a caller without the keys.
	Keys []string
	// Exported is an optional checkpoint kept outside the store; only such a
	// checkpoint detects a rollback of the whole tail.
	Exported []byte
	// MaxProblems bounds Report.Problems. If zero, 1000.
	MaxProblems int
}

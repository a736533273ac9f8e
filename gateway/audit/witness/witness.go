package witness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// Source is where a witness reads the trail's public commitments
// (HTTPSource: the gateway's public audit endpoints).
type Source interface {
	// Keys returns the published verifier key history.
	Keys(ctx context.Context) ([]string, error)
	// Checkpoint returns the newest signed checkpoint (the signed note).
	Checkpoint(ctx context.Context) ([]byte, error)
	// Consistency returns the proof that tree from is a prefix of tree to.
	Consistency(ctx context.Context, from, to int64) (audit.ConsistencyProof, error)
}

// Failure kinds: each names what the witness saw.
const (
	KindRollback = "rollback" // the trail is smaller than what the witness saw (rolled back or truncated)
	KindFork     = "fork"     // the trail does not extend what the witness saw (history rewritten)
	KindKey      = "key"      // signed by a key outside the published history, or the history lost a key
	KindStale    = "stale"    // the newest checkpoint is older than Options.MaxAge
	KindProof    = "proof"    // the server's consistency proof is malformed or for another range
)

// TreeRef names one tree: its size, root and signing key.
type TreeRef struct {
	Size     int64  `json:"size"`
	RootHash string `json:"root_hash"`
	KeyID    string `json:"key_id,omitempty"`
}

// Failure means the trail does not extend what the witness kept: an alarm.
// Msg starts with the kind, so every message contains one of rollback,
// truncat(ed), fork or key (or stale, proof).
type Failure struct {
	Kind    string
	Msg     string
	Trusted *TreeRef // what the witness kept
	Seen    *TreeRef // what the server served (nil if it served nothing usable)
}

func (f *Failure) Error() string { return f.Msg }

func ref(cp audit.Checkpoint) *TreeRef {
	return &TreeRef{Size: cp.Size, RootHash: cp.RootHash, KeyID: cp.KeyID}
}

// Options tunes Check.
type Options struct {
	// Server is recorded in the new state (informational).
	Server string
	// Now stamps the state and judges MaxAge. If nil, time.Now.
	Now func() time.Time
	// MaxAge, when not zero, fails a checkpoint signed longer ago than this
	// (KindStale): a gateway writes a checkpoint every interval even when
	// idle, so an old newest checkpoint means the server is frozen or
	// replaying an old copy.
	MaxAge time.Duration
}

// Result is a successful check.
type Result struct {
	State *State // the state to save
	// First: there was no state; the checkpoint was trusted as it was.
	First bool
	// Grew is how many events the trail grew by since the kept checkpoint.
	Grew int64
	// NewKeys are keys the published history gained (a key rotation).
	NewKeys []string
}

// Check fetches the newest checkpoint and key history from src and, when
// prev is not nil, proves that the trail extends prev. It returns the state
// to save, a *Failure when the trail does not extend prev, an error
// wrapping ErrState when prev belongs to another trail, or another error
// when src could not be read (nothing was checked).
func Check(ctx context.Context, src Source, prev *State, opt Options) (Result, error) {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	keys, err := src.Keys(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("fetch key history: %w", err)
	}
	if len(keys) == 0 {
		return Result{}, &Failure{Kind: KindKey, Msg: "key: the server publishes no verifier keys"}
	}
	note, err := src.Checkpoint(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("fetch checkpoint: %w", err)
	}
	var trusted *TreeRef
	var old audit.Checkpoint
	if prev != nil {
		if old, err = prev.checkpoint(); err != nil {
			return Result{}, err
		}
		trusted = ref(old)
	}
	cp, err := audit.ParseCheckpoint(note, keys...)
	if err != nil {
		return Result{}, &Failure{Kind: KindKey, Trusted: trusted,
			Msg: fmt.Sprintf("key: the newest checkpoint is not signed by any key in the published key history: %v", err)}
	}
	seen := ref(cp)
	res := Result{First: prev == nil}
	if prev != nil {
		if cp.Origin != prev.Origin {
			return Result{}, fmt.Errorf("%w: the state file is for the trail %q, the server's trail is %q: use another state file",
				ErrState, prev.Origin, cp.Origin)
		}
		for _, k := range prev.Keys {
			if !slices.Contains(keys, k) {
				return Result{}, &Failure{Kind: KindKey, Trusted: trusted, Seen: seen,
					Msg: fmt.Sprintf("key: the published key history no longer lists %s, which this witness saw: the history was rewritten (or this state is of another trail)", k)}
			}
		}
		for _, k := range keys {
			if !slices.Contains(prev.Keys, k) {
				res.NewKeys = append(res.NewKeys, k)
			}
		}
		if err := extends(ctx, src, old, cp, trusted, seen); err != nil {
			return Result{}, err
		}
		res.Grew = cp.Size - old.Size
	}
	if opt.MaxAge > 0 && !cp.Time.IsZero() && opt.Now().Sub(cp.Time) > opt.MaxAge {
		return Result{}, &Failure{Kind: KindStale, Trusted: trusted, Seen: seen,
			Msg: fmt.Sprintf("stale: the newest checkpoint was signed at %s, over %s ago: the server is frozen or serves an old copy (a rollback?)",
				cp.Time.UTC().Format(time.RFC3339), opt.MaxAge)}
	}
	res.State = &State{Version: stateVersion, Server: opt.Server, Origin: cp.Origin, Size: cp.Size, RootHash: cp.RootHash,
		KeyID: cp.KeyID, Checkpoint: cp.Note, Keys: keys, CheckedAt: opt.Now().UTC()}
	return res, nil
}

// extends checks that cp's tree extends old's.
func extends(ctx context.Context, src Source, old, cp audit.Checkpoint, trusted, seen *TreeRef) error {
	oldRoot, _ := old.Root()
	newRoot, _ := cp.Root()
	switch {
	case cp.Size < old.Size:
		return &Failure{Kind: KindRollback, Trusted: trusted, Seen: seen,
			Msg: fmt.Sprintf("rollback: the trail holds %d events, fewer than the %d this witness saw: it was truncated or rolled back to an older copy",
				cp.Size, old.Size)}
	case cp.Size == old.Size:
		if newRoot != oldRoot {
			return &Failure{Kind: KindFork, Trusted: trusted, Seen: seen,
				Msg: fmt.Sprintf("fork: the trail of %d events has another root than the one this witness saw: its history was rewritten", cp.Size)}
		}
		return nil
	case old.Size == 0:
		return nil // every tree extends the empty tree
	}
	p, err := src.Consistency(ctx, old.Size, cp.Size)
	var he *HTTPError
	if errors.As(err, &he) && he.Status/100 == 4 {
		// The server signed a tree of this size yet refuses the proof
		// from the kept one: that is no proof of consistency.
		return &Failure{Kind: KindProof, Trusted: trusted, Seen: seen,
			Msg: fmt.Sprintf("proof: the server refuses a consistency proof %d..%d (%s): a fork cannot be ruled out", old.Size, cp.Size, he.Msg)}
	}
	if err != nil {
		return fmt.Errorf("fetch consistency proof %d..%d: %w", old.Size, cp.Size, err)
	}
	if p.From != old.Size || p.To != cp.Size {
		return &Failure{Kind: KindProof, Trusted: trusted, Seen: seen,
			Msg: fmt.Sprintf("proof: asked for a consistency proof %d..%d, got %d..%d (a fork cannot be ruled out)", old.Size, cp.Size, p.From, p.To)}
	}
	if err := p.Check(oldRoot, newRoot); err != nil {
		return &Failure{Kind: KindFork, Trusted: trusted, Seen: seen,
			Msg: fmt.Sprintf("fork: the trail of %d events does not extend the %d events this witness saw: its history was rewritten (%v)",
				cp.Size, old.Size, err)}
	}
	return nil
}

package cluster

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/loggate/loggate/gateway/audit"
)

// maxProblems bounds Report.Problems.
const maxProblems = 1000

// Verify checks the shared audit chain: seqs gapless from 1, every record
// at its own seq, each prev_hash the previous record's hash, each hash
// SHA-256(prev || record), and the head (seq, hash) equal to the last
// record. When the trail keeps a Merkle tree it also recomputes the tree
// root over the records and checks it against the latest signed checkpoint
// (its signature with the Audit's signing key, when configured) and against
// the tree hashes stored for proofs; Report.Root is then that root,
// otherwise the base64 of the last chain hash. An error means the check
// could not run.
func (a *Audit) Verify(ctx context.Context) (audit.Report, error) {
	rep := audit.Report{Problems: []audit.Problem{}}
	add := func(kind audit.ProblemKind, seq int64, format string, args ...any) {
		if len(rep.Problems) >= maxProblems {
			rep.MoreProblems++
			return
		}
		rep.Problems = append(rep.Problems, audit.Problem{Kind: kind, Seq: seq, Detail: fmt.Sprintf(format, args...)})
	}
	var prev [32]byte
	var expect int64 = 1
	tree := memTree{}
	err := a.scan(ctx, false, 0, func(s stored) (bool, error) {
		if err := tree.add(rep.Events, s.rec); err != nil {
			return false, err
		}
		rep.Events++
		rep.LastSeq = s.seq
		var head struct {
			Seq      *int64 `json:"seq"`
			PrevHash string `json:"prev_hash"`
		}
		if err := json.Unmarshal(s.rec, &head); err != nil || head.Seq == nil {
			add(audit.ProblemModified, s.seq, "record at seq %d is not a valid record", s.seq)
		} else {
			if *head.Seq != s.seq {
				add(audit.ProblemReordered, s.seq, "record says seq %d but is stored at seq %d", *head.Seq, s.seq)
			}
			if head.PrevHash != hex.EncodeToString(prev[:]) {
				add(audit.ProblemModified, s.seq, "prev_hash does not match the previous record's hash")
			}
		}
		if s.seq != expect {
			if s.seq > expect {
				add(audit.ProblemDeleted, expect, "seqs %d..%d are missing", expect, s.seq-1)
			} else {
				add(audit.ProblemReordered, s.seq, "seq %d after %d", s.seq, expect-1)
			}
		}
		expect = s.seq + 1
		sum := audit.ChainHash(prev, s.rec)
		if hex.EncodeToString(sum[:]) != s.hash {
			add(audit.ProblemModified, s.seq, "hash does not match the record")
		}
		// Continue the chain from the stored hash, so one modified record
		// is reported once rather than breaking every later link.
		if b, err := hex.DecodeString(s.hash); err == nil && len(b) == 32 {
			copy(prev[:], b)
		} else {
			prev = sum
		}
		return true, nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify audit chain: %w", err)
	}
	rep.Root = base64.StdEncoding.EncodeToString(prev[:])
	h, err := a.c.HMGet(ctx, a.headKey(), "seq", "hash", "tree", "cp").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return rep, fmt.Errorf("verify audit chain: %w", unavailable("read head", err))
	}
	var headSeq int64
	if s, ok := h[0].(string); ok {
		headSeq, _ = strconv.ParseInt(s, 10, 64)
	}
	rep.Head = headSeq
	headHash, _ := h[1].(string)
	switch {
	case headSeq > rep.LastSeq:
		add(audit.ProblemTruncated, rep.LastSeq+1, "the head says %d events, the stream ends at %d", headSeq, rep.LastSeq)
	case headSeq < rep.LastSeq:
		add(audit.ProblemInserted, headSeq+1, "records after the head (seq %d)", headSeq)
	case headSeq > 0 && headHash != hex.EncodeToString(prev[:]):
		add(audit.ProblemModified, headSeq, "the head hash does not match the last record")
	}
	if t, _ := h[2].(string); t == "1" {
		cp, _ := h[3].(string)
		if err := a.verifyTree(ctx, &rep, tree, headSeq, cp, add); err != nil {
			return rep, fmt.Errorf("verify audit chain: %w", err)
		}
	}
	return rep, nil
}

// verifyTree checks the Merkle root recomputed over the records against
// the signed checkpoint and the stored tree hashes.
func (a *Audit) verifyTree(ctx context.Context, rep *audit.Report, tree memTree, headSeq int64, cp string,
	add func(audit.ProblemKind, int64, string, ...any)) error {
	root, err := tlog.TreeHash(rep.Events, tree)
	if err != nil {
		return err
	}
	rep.Root = base64.StdEncoding.EncodeToString(root[:])
	if stored, err := tlog.TreeHash(headSeq, &treeReader{ctx: ctx, a: a}); err != nil {
		if !errors.Is(err, audit.ErrTampered) {
			return err
		}
		add(audit.ProblemModified, headSeq, "stored Merkle tree hashes are missing: %v", err)
	} else if stored != root {
		add(audit.ProblemModified, headSeq, "stored Merkle tree hashes do not match the records (proofs would fail)")
	}
	if cp == "" {
		if a.signer != nil {
			add(audit.ProblemTruncated, headSeq, "no signed checkpoint for the tree")
		}
		return nil
	}
	var c audit.Checkpoint
	if a.signer != nil {
		if c, err = audit.ParseCheckpoint([]byte(cp), a.signer.verifier); err != nil {
			add(audit.ProblemModified, headSeq, "checkpoint: %v", err)
			return nil
		}
	} else if c, err = unverifiedCheckpoint(cp); err != nil {
		add(audit.ProblemModified, headSeq, "checkpoint: %v", err)
		return nil
	}
	switch {
	case c.Size != rep.Events:
		add(audit.ProblemTruncated, c.Size, "the signed checkpoint covers %d events, the trail holds %d", c.Size, rep.Events)
	case c.RootHash != rep.Root:
		add(audit.ProblemModified, c.Size, "the Merkle root of the records does not match the signed checkpoint")
	}
	return nil
}

// unverifiedCheckpoint reads a checkpoint note's size and root without
// checking its signature (no key given to the verifier).
func unverifiedCheckpoint(n string) (audit.Checkpoint, error) {
	text, _, ok := strings.Cut(n, "\n\n")
	lines := strings.Split(text, "\n")
	if !ok || len(lines) < 3 {
		return audit.Checkpoint{}, errors.New("not a signed note")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return audit.Checkpoint{}, errors.New("size")
	}
	return audit.Checkpoint{Origin: lines[0], Size: size, RootHash: lines[2], Note: n}, nil
}

// VerifyURL connects to the Redis at url and verifies the audit chain under
// prefix (zero: "loggate:"); for `loggate audit verify --redis`. With key
// (the replicas' checkpoint signing key) the checkpoint's signature is
// checked too; nil checks its size and root only.
func VerifyURL(ctx context.Context, url, prefix string, key ed25519.PrivateKey) (audit.Report, error) {
	c, err := Dial(url)
	if err != nil {
		return audit.Report{}, err
	}
	defer c.Close()
	a, err := NewAudit(AuditConfig{Client: c, Prefix: prefix, SigningKey: key})
	if err != nil {
		return audit.Report{}, err
	}
	return a.Verify(ctx)
}

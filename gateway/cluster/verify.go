package cluster

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/loggate/loggate/gateway/audit"
)

// maxProblems bounds Report.Problems.
const maxProblems = 1000

// Verify checks the shared audit chain: seqs gapless from 1, every record
// at its own seq, each prev_hash the previous record's hash, each hash
// SHA-256(prev || record), and the head (seq, hash) equal to the last
// record. Report.Root is the base64 of the last hash (there is no Merkle
// tree in the Redis trail). An error means the check could not run.
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
	err := a.scan(ctx, false, 0, func(s stored) (bool, error) {
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
		sum := ChainHash(prev, s.rec)
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
	h, err := a.c.HMGet(ctx, a.headKey(), "seq", "hash").Result()
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
	return rep, nil
}

// VerifyURL connects to the Redis at url and verifies the audit chain under
// prefix (zero: "loggate:"); for `loggate audit verify --redis`.
func VerifyURL(ctx context.Context, url, prefix string) (audit.Report, error) {
	c, err := Dial(url)
	if err != nil {
		return audit.Report{}, err
	}
	defer c.Close()
	a, err := NewAudit(AuditConfig{Client: c, Prefix: prefix})
	if err != nil {
		return audit.Report{}, err
	}
	return a.Verify(ctx)
}

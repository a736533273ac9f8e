package cluster

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/loggate/loggate/gateway/audit"
)

// Verify checks the shared audit trail with audit.VerifyTrail, the one
// verifier every store uses: seqs gapless from 1, every record at its own
// seq, each prev_hash the previous record's hash, each hash SHA-256(prev ||
// record), the id index, the chain head, the stored tree hashes and the
// signed checkpoint (its signature too when the Audit has the signing key).
// It reads one consistent snapshot (see redisTrail), so appends by other
// replicas while it runs are never reported. An error wrapping
// audit.ErrTampered means problems were found (listed in the report); other
// errors mean the check could not run.
func (a *Audit) Verify(ctx context.Context) (audit.Report, error) {
	return a.VerifyWith(ctx, nil)
}

// VerifyWith is Verify that also checks an exported checkpoint (a checkpoint
// kept outside Redis detects a rollback of the whole tail).
func (a *Audit) VerifyWith(ctx context.Context, exported []byte) (audit.Report, error) {
	opt := audit.VerifyOptions{Exported: exported}
	if a.signer != nil {
		opt.Keys = []string{a.signer.VerifierKey()}
	}
	return audit.VerifyTrail(ctx, &redisTrail{a: a}, opt)
}

// redisTrail is the audit.Trail of the Redis trail. Snapshot reads the head,
// the stream's last entry and the id index's size in one MULTI/EXEC, the
// same atomic step the append script writes them in; Rows then reads the
// stream only up to that last entry. Tree hashes and index entries of those
// records were written by the same scripts and never change, so a view read
// over many round trips is still the one of that instant.
type redisTrail struct {
	a      *Audit
	bound  string // last stream entry id at the snapshot; "" when empty
	noTree bool
}

var (
	_ audit.Trail   = (*redisTrail)(nil)
	_ audit.IDIndex = (*redisTrail)(nil)
)

func (t *redisTrail) Snapshot(ctx context.Context) (audit.Snapshot, error) {
	a := t.a
	var head *redis.SliceCmd
	var last *redis.XMessageSliceCmd
	var ids *redis.IntCmd
	_, err := a.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		head = p.HMGet(ctx, a.headKey(), "seq", "hash", "tree", "cp")
		last = p.XRevRangeN(ctx, a.streamKey(), "+", "-", 1)
		ids = p.HLen(ctx, a.idsKey())
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return audit.Snapshot{}, unavailable("read head", err)
	}
	h := head.Val()
	snap := audit.Snapshot{Indexed: ids.Val(), ChainHead: &audit.ChainHead{}}
	if s, ok := h[0].(string); ok {
		if snap.ChainHead.Seq, err = strconv.ParseInt(s, 10, 64); err != nil {
			return snap, fmt.Errorf("%w: chain head seq %q", audit.ErrTampered, s)
		}
	}
	snap.ChainHead.Hash, _ = h[1].(string)
	tree, _ := h[2].(string)
	if cp, _ := h[3].(string); cp != "" {
		snap.Head = []byte(cp)
	}
	// A trail begun before the tree was kept has neither tree nor checkpoint;
	// replicas without a signing key write no checkpoint; an empty trail has
	// none yet (LatestCheckpoint signs one on demand).
	t.noTree = snap.ChainHead.Seq > 0 && tree != "1"
	snap.NoTree = t.noTree
	snap.HeadOptional = t.noTree || a.signer == nil || snap.ChainHead.Seq == 0
	if ms := last.Val(); len(ms) == 1 {
		t.bound = ms[0].ID
	}
	return snap, nil
}

func (t *redisTrail) Rows(ctx context.Context, fn func([]audit.StoredRow) error) error {
	if t.bound == "" {
		return nil
	}
	const page = 1000
	start := "-"
	for {
		ms, err := t.a.c.XRangeN(ctx, t.a.streamKey(), start, t.bound, page).Result()
		if err != nil {
			return unavailable("read", err)
		}
		rows := make([]audit.StoredRow, len(ms))
		for i, m := range ms {
			s, err := parseStored(m)
			if err != nil {
				// An entry without a record: the verifier sees an empty
				// record where retention never purged (modified).
				ss, _, _ := strings.Cut(m.ID, "-")
				s.seq, _ = strconv.ParseInt(ss, 10, 64)
			}
			rows[i] = audit.StoredRow{Seq: s.seq, Record: s.rec}
			if b, err := hex.DecodeString(s.hash); err == nil {
				rows[i].Hash = b
			}
		}
		if !t.noTree {
			if err := t.readTree(ctx, rows); err != nil {
				return err
			}
		}
		if len(rows) > 0 {
			if err := fn(rows); err != nil {
				return err
			}
		}
		if len(ms) < page {
			return nil
		}
		start = "(" + ms[len(ms)-1].ID
	}
}

// readTree fills each row's Tree with the stored hashes its leaf made, in
// one HMGET for the page; a row missing any of them gets none.
func (t *redisTrail) readTree(ctx context.Context, rows []audit.StoredRow) error {
	var fields []string
	for _, r := range rows {
		if r.Seq < 1 {
			continue
		}
		for x := tlog.StoredHashIndex(0, r.Seq-1); x < tlog.StoredHashIndex(0, r.Seq); x++ {
			fields = append(fields, strconv.FormatInt(x, 10))
		}
	}
	if len(fields) == 0 {
		return nil
	}
	vals, err := t.a.c.HMGet(ctx, t.a.treeKey(), fields...).Result()
	if err != nil {
		return unavailable("read tree", err)
	}
	j := 0
	for i := range rows {
		if rows[i].Seq < 1 {
			continue
		}
		n := int(tlog.StoredHashIndex(0, rows[i].Seq) - tlog.StoredHashIndex(0, rows[i].Seq-1))
		blob := make([]byte, 0, n*tlog.HashSize)
		for _, v := range vals[j : j+n] {
			s, ok := v.(string)
			if !ok || len(s) != tlog.HashSize {
				blob = nil
				break
			}
			blob = append(blob, s...)
		}
		rows[i].Tree = blob
		j += n
	}
	return nil
}

func (t *redisTrail) TreeHashes(ctx context.Context) tlog.HashReader {
	return &treeReader{ctx: ctx, a: t.a}
}

func (t *redisTrail) IndexedSeqs(ctx context.Context, ids []string) ([]int64, error) {
	vals, err := t.a.c.HMGet(ctx, t.a.idsKey(), ids...).Result()
	if err != nil {
		return nil, unavailable("read id index", err)
	}
	out := make([]int64, len(ids))
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i], _ = strconv.ParseInt(s, 10, 64)
		}
	}
	return out, nil
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

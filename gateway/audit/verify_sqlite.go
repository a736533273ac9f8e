package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// VerifyConfig configures VerifyWith.
type VerifyConfig struct {
	Dir string // store directory (required)
	// Checkpoint is an optional exported checkpoint (Checkpoint.Bytes). Only a
	// checkpoint kept outside the store detects a rollback of the whole tail.
	Checkpoint []byte
	// VerifierKeys are the trusted note verifier keys. If empty, the keys in
	// Dir/keys/audit.pub are used; pass keys from elsewhere for a stronger check.
	VerifierKeys []string
	// MaxProblems bounds Report.Problems. If zero, 1000.
	MaxProblems int
}

// Verify checks the store in dir offline; see VerifyWith.
func Verify(ctx context.Context, dir string, checkpoint []byte) (Report, error) {
	return VerifyWith(ctx, VerifyConfig{Dir: dir, Checkpoint: checkpoint})
}

// VerifyWith opens the store read-only and runs VerifyTrail over one read
// transaction of it (a consistent snapshot even while a Store writes): every
// record, search column, tree hash, checkpoint and the head.
func VerifyWith(ctx context.Context, cfg VerifyConfig) (Report, error) {
	keys := cfg.VerifierKeys
	if len(keys) == 0 {
		var err error
		if keys, err = readVerifierKeys(filepath.Join(cfg.Dir, keysDir, verifierFile)); err != nil {
			return Report{}, fmt.Errorf("audit verify: %w", err)
		}
	}
	path := filepath.Join(cfg.Dir, dbFile)
	if _, err := os.Stat(path); err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	defer tx.Rollback()
	return VerifyTrail(ctx, sqliteTrail{tx: tx}, VerifyOptions{Keys: keys, Exported: cfg.Checkpoint, MaxProblems: cfg.MaxProblems})
}

// sqliteTrail reads a store file through one read transaction.
type sqliteTrail struct{ tx *sql.Tx }

var _ Trail = sqliteTrail{}

func (t sqliteTrail) Snapshot(ctx context.Context) (Snapshot, error) {
	snap := Snapshot{Indexed: -1}
	rows, err := t.tx.QueryContext(ctx, `SELECT id, size, time_ns, note FROM checkpoints ORDER BY id`)
	if err != nil {
		return snap, fmt.Errorf("read checkpoints: %w", err)
	}
	for rows.Next() {
		var id, size, ns int64
		var note string
		if err := rows.Scan(&id, &size, &ns, &note); err != nil {
			rows.Close()
			return snap, fmt.Errorf("read checkpoints: %w", err)
		}
		snap.Checkpoints = append(snap.Checkpoints, StoredCheckpoint{Name: fmt.Sprintf("checkpoint %d", id),
			Note: []byte(note), Size: &size, TimeNS: &ns})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return snap, fmt.Errorf("read checkpoints: %w", err)
	}
	var note string
	switch err := t.tx.QueryRowContext(ctx, `SELECT note FROM head WHERE id = 1`).Scan(&note); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return snap, fmt.Errorf("read head: %w", err)
	default:
		snap.Head = []byte(note)
	}
	if snap.PurgeHorizon, err = authorizedHorizon(ctx, t.tx); err != nil {
		return snap, err
	}
	return snap, nil
}

func (t sqliteTrail) TreeHashes(ctx context.Context) tlog.HashReader {
	return &hashReader{ctx: ctx, q: t.tx}
}

func (t sqliteTrail) Rows(ctx context.Context, fn func([]StoredRow) error) error {
	rows, err := t.tx.QueryContext(ctx, `SELECT e.seq, e.record, e.hash, t.hashes, e.time_ns, `+packedColumns+`
		FROM events e LEFT JOIN tree t ON t.leaf = e.seq - 1 ORDER BY e.seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	const size = 1024
	// Each batch's bytes go into one byte arena and one string arena, read
	// back by offset once the batch is complete (an append may move an
	// arena while it fills): two allocations a batch instead of two a row,
	// which was most of the read pass's garbage. The checker keeps nothing
	// of a batch but the rows' ids, which it uses before it asks for the next.
	type span struct{ rec, hash, tree, treeEnd, packed, packedEnd int }
	var bytesHint, textHint int
	for {
		b := make([]StoredRow, 0, size)
		cols := make([]Columns, size)
		spans := make([]span, 0, size)
		arena := make([]byte, 0, bytesHint)
		var text strings.Builder
		text.Grow(textHint)
		hasTree := make([]bool, 0, size)
		for len(b) < size && rows.Next() {
			var r StoredRow
			var rec, hash, stored, packed sql.RawBytes
			c := &cols[len(b)]
			if err := rows.Scan(&r.Seq, &rec, &hash, &stored, &c.TimeNS, &packed); err != nil {
				return err
			}
			if packed == nil {
				return fmt.Errorf("event %d: read columns: a search column is NULL", r.Seq)
			}
			sp := span{rec: len(arena)}
			arena = append(arena, rec...)
			sp.hash = len(arena)
			arena = append(arena, hash...)
			sp.tree = len(arena)
			arena = append(arena, stored...)
			sp.treeEnd = len(arena)
			sp.packed = text.Len()
			text.Write(packed)
			sp.packedEnd = text.Len()
			spans = append(spans, sp)
			hasTree = append(hasTree, stored != nil)
			r.Columns = c
			b = append(b, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
		packedAll := text.String()
		for i := range b {
			sp, r := spans[i], &b[i]
			r.Record = arena[sp.rec:sp.hash:sp.hash]
			r.Hash = arena[sp.hash:sp.tree:sp.tree]
			if hasTree[i] {
				r.Tree = arena[sp.tree:sp.treeEnd:sp.treeEnd]
			}
			if err := unpackColumns(packedAll[sp.packed:sp.packedEnd], r.Columns); err != nil {
				return fmt.Errorf("event %d: %w", r.Seq, err)
			}
		}
		bytesHint, textHint = len(arena)+len(arena)/8, len(packedAll)+len(packedAll)/8
		if err := fn(b); err != nil {
			return err
		}
		if len(b) < size {
			return nil
		}
	}
}

// packedColumns is the SQL that reads the ten text search columns of
// events e as one value, each as its byte length, ':' and its bytes, so
// that the read pass asks SQLite for six values a row instead of fifteen
// (each value costs the driver a type probe, a copy and two mutex rounds)
// and Go allocates one string a row; unpackColumns splits it without
// copying. A NULL column makes the whole value NULL, which Scan refuses,
// as it refused the column alone.
var packedColumns = func() string {
	var b strings.Builder
	for i, c := range packedColumnNames {
		if i > 0 {
			b.WriteString(" || ")
		}
		fmt.Fprintf(&b, "length(CAST(e.%[1]s AS BLOB)) || ':' || e.%[1]s", c)
	}
	return b.String()
}()

// packedColumnNames is the order of packedColumns; unpackColumns follows it.
var packedColumnNames = [...]string{"id", "action", "outcome", "actor_subject", "actor_email",
	"request_id", "target_request_id", "grant_id", "service", "env"}

// unpackColumns splits a packedColumns value into c's text columns; the
// strings share packed's bytes.
func unpackColumns(packed string, c *Columns) error {
	dst := [...]*string{&c.ID, &c.Action, &c.Outcome, &c.ActorSubject, &c.ActorEmail,
		&c.RequestID, &c.TargetRequestID, &c.GrantID, &c.Service, &c.Env}
	for i, d := range dst {
		n, j := 0, 0
		for j < len(packed) && packed[j] >= '0' && packed[j] <= '9' && j < 10 {
			n = n*10 + int(packed[j]-'0')
			j++
		}
		if j == 0 || j >= len(packed) || packed[j] != ':' || n > len(packed)-j-1 {
			return fmt.Errorf("read column %s: malformed packed columns", packedColumnNames[i])
		}
		*d, packed = packed[j+1:j+1+n], packed[j+1+n:]
	}
	if packed != "" {
		return errors.New("read columns: trailing bytes after the packed columns")
	}
	return nil
}

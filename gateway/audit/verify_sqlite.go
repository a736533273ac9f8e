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
	for {
		b := make([]StoredRow, 0, size)
		cols := make([]Columns, size)
		for len(b) < size && rows.Next() {
			var r StoredRow
			var rec, hash, stored sql.RawBytes
			var packed string
			c := &cols[len(b)]
			if err := rows.Scan(&r.Seq, &rec, &hash, &stored, &c.TimeNS, &packed); err != nil {
				return err
			}
			if err := unpackColumns(packed, c); err != nil {
				return fmt.Errorf("event %d: %w", r.Seq, err)
			}
			// One allocation per row; capacity is exact, so no append moves it.
			buf := make([]byte, 0, len(rec)+len(hash)+len(stored))
			buf = append(buf, rec...)
			r.Record = buf[:len(rec):len(rec)]
			buf = append(buf, hash...)
			r.Hash = buf[len(rec):len(buf):len(buf)]
			if stored != nil {
				r.Tree = append(buf, stored...)[len(buf):]
			}
			r.Columns = c
			b = append(b, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(b) == 0 {
			return nil
		}
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

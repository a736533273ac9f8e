package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// rawDB opens the store file for tampering, with the append-only triggers
// dropped, as an attacker with the file could.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, tr := range []string{"events_append_only_u", "events_append_only_d", "tree_append_only_u",
		"tree_append_only_d", "checkpoints_append_only_u", "checkpoints_append_only_d"} {
		mustExec(t, db, "DROP TRIGGER "+tr)
	}
	return db
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func record(t *testing.T, db *sql.DB, seq int64) ([]byte, []byte) {
	t.Helper()
	var rec, hash []byte
	if err := db.QueryRow(`SELECT record, hash FROM events WHERE seq = ?`, seq).Scan(&rec, &hash); err != nil {
		t.Fatal(err)
	}
	return rec, hash
}

// storeWith creates a closed store holding n events.
func storeWith(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func kinds(r Report) []string {
	var ks []string
	for _, p := range r.Problems {
		ks = append(ks, fmt.Sprintf("%s@%d", p.Kind, p.Seq))
	}
	return ks
}

func TestVerifyCleanStore(t *testing.T) {
	dir := storeWith(t, 50)
	rep, err := Verify(context.Background(), dir, nil)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if rep.Events != 50 || rep.LastSeq != 50 || rep.Head != 50 || rep.Checkpoints != 2 {
		t.Errorf("report = %+v, want 50 events, head 50, 2 checkpoints (open, close)", rep)
	}
}

func TestVerifyEmptyStore(t *testing.T) {
	dir := storeWith(t, 0)
	if rep, err := Verify(context.Background(), dir, nil); err != nil {
		t.Fatalf("Verify: %v (%v)", err, kinds(rep))
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		want   []string
	}{
		{
			name: "modified record bytes",
			tamper: func(t *testing.T, db *sql.DB) {
				rec, _ := record(t, db, 5)
				rec = bytes.Replace(rec, []byte("because"), []byte("BECAUSE"), 1)
				mustExec(t, db, `UPDATE events SET record = ? WHERE seq = 5`, rec)
			},
			want: []string{"modified@5"},
		},
		{
			name: "modified record with recomputed chain",
			tamper: func(t *testing.T, db *sql.DB) {
				// Rewrite seq 5 and re-hash everything after it: the chain is
				// consistent again, only the signed roots tell.
				_, prevHash := record(t, db, 4)
				for seq := int64(5); seq <= 10; seq++ {
					rec, _ := record(t, db, seq)
					if seq == 5 {
						rec = bytes.Replace(rec, []byte(`"outcome":"success"`), []byte(`"outcome":"denied"`), 1)
					}
					var prev [32]byte
					copy(prev[:], prevHash)
					rec = BuildRecord(seq, prev, tailOf(rec))
					h := ChainHash(prev, rec)
					mustExec(t, db, `UPDATE events SET record = ?, hash = ? WHERE seq = ?`, rec, h[:], seq)
					prevHash = h[:]
				}
			},
			want: []string{"modified@5"}, // its stored tree hashes no longer match
		},
		{
			name: "rewritten log, chain and tree",
			tamper: func(t *testing.T, db *sql.DB) {
				// Without the key, only the signed roots tell.
				_, prevHash := record(t, db, 4)
				for seq := int64(5); seq <= 10; seq++ {
					rec, _ := record(t, db, seq)
					if seq == 5 {
						rec = bytes.Replace(rec, []byte(`"outcome":"success"`), []byte(`"outcome":"denied"`), 1)
					}
					prev := [32]byte(prevHash)
					rec = BuildRecord(seq, prev, tailOf(rec))
					h := ChainHash(prev, rec)
					mustExec(t, db, `UPDATE events SET record = ?, hash = ? WHERE seq = ?`, rec, h[:], seq)
					prevHash = h[:]
				}
				mustExec(t, db, `UPDATE events SET outcome = 'denied' WHERE seq = 5`) // the search column too
				var tree compactRange
				for seq := int64(1); seq <= 10; seq++ {
					rec, _ := record(t, db, seq)
					var blob []byte
					for _, h := range tree.append(tlog.RecordHash(rec)) {
						blob = append(blob, h[:]...)
					}
					mustExec(t, db, `UPDATE tree SET hashes = ? WHERE leaf = ?`, blob, seq-1)
				}
			},
			want: []string{"modified@0"}, // the first signed size covering seq 5 fails
		},
		{
			name:   "deleted row",
			tamper: func(t *testing.T, db *sql.DB) { mustExec(t, db, `DELETE FROM events WHERE seq = 5`) },
			want:   []string{"deleted@5"},
		},
		{
			name: "reordered rows",
			tamper: func(t *testing.T, db *sql.DB) {
				mustExec(t, db, `UPDATE events SET seq = -1 WHERE seq = 5`)
				mustExec(t, db, `UPDATE events SET seq = 5 WHERE seq = 6`)
				mustExec(t, db, `UPDATE events SET seq = 6 WHERE seq = -1`)
			},
			want: []string{"reordered@5", "reordered@6"},
		},
		{
			name: "inserted forged row",
			tamper: func(t *testing.T, db *sql.DB) {
				rec, hash := record(t, db, 10)
				var prev [32]byte
				copy(prev[:], hash)
				tail := bytes.Replace(tailOf(rec), []byte("evt_"), []byte("evt_forged"), 1)
				forged := BuildRecord(11, prev, tail)
				h := ChainHash(prev, forged)
				c, err := recordColumns(forged)
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, db, `INSERT INTO events(seq, id, time_ns, action, outcome, actor_subject, actor_email,
					request_id, target_request_id, grant_id, service, env, record, hash)
					VALUES (11, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.TimeNS, c.Action, c.Outcome,
					c.ActorSubject, c.ActorEmail, c.RequestID, c.TargetRequestID, c.GrantID, c.Service, c.Env, forged, h[:])
			},
			want: []string{"inserted@11"},
		},
		{
			name:   "inserted row before the first",
			tamper: func(t *testing.T, db *sql.DB) { mustExec(t, db, `UPDATE events SET seq = 0 WHERE seq = 1`) },
			want:   []string{"inserted@0", "deleted@1"},
		},
		{
			name:   "truncated tail",
			tamper: func(t *testing.T, db *sql.DB) { mustExec(t, db, `DELETE FROM events WHERE seq > 8`) },
			want:   []string{"truncated@9"},
		},
		{
			name: "checkpoint signed by another key",
			tamper: func(t *testing.T, db *sql.DB) {
				_, priv, _ := ed25519.GenerateKey(rand.Reader)
				k, err := NewSigner(priv, DefaultOrigin)
				if err != nil {
					t.Fatal(err)
				}
				cp, err := signCheckpoint(k, DefaultOrigin, 10, tlog.Hash{}, testTime)
				if err != nil {
					t.Fatal(err)
				}
				mustExec(t, db, `INSERT INTO checkpoints(size, time_ns, note) VALUES (10, 0, ?)`, cp.Note)
			},
			want: []string{"bad_signature@0"},
		},
		{
			name: "stored tree hashes altered",
			tamper: func(t *testing.T, db *sql.DB) {
				mustExec(t, db, `UPDATE tree SET hashes = zeroblob(length(hashes)) WHERE leaf = 3`)
			},
			want: []string{"modified@4"},
		},
		{
			name:   "stored tree hashes deleted",
			tamper: func(t *testing.T, db *sql.DB) { mustExec(t, db, `DELETE FROM tree WHERE leaf = 6`) },
			want:   []string{"modified@7"},
		},
		{
			name:   "head removed",
			tamper: func(t *testing.T, db *sql.DB) { mustExec(t, db, `DELETE FROM head`) },
			want:   []string{"bad_signature@0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := storeWith(t, 10)
			tt.tamper(t, rawDB(t, dir))
			rep, err := Verify(context.Background(), dir, nil)
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("Verify error = %v, want ErrTampered", err)
			}
			got, want := kinds(rep), slices.Clone(tt.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems = %v, want %v\n%+v", got, want, rep.Problems)
			}
		})
	}
}

// Open refuses to extend a log whose tip is not covered by the signed head,
// so a restart cannot launder tampering by re-signing it.
func TestOpenRefusesTamperedTip(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
	}{
		{"row appended", func(t *testing.T, db *sql.DB) {
			rec, _ := record(t, db, 3)
			mustExec(t, db, `INSERT INTO events(seq, id, time_ns, action, outcome, actor_subject, actor_email,
				request_id, target_request_id, grant_id, service, env, record, hash)
				VALUES (4, 'evt_forged', 0, 'x', 'success', '', '', '', '', '', '', '', ?, zeroblob(32))`, rec)
			mustExec(t, db, `INSERT INTO tree(leaf, hashes) VALUES (3, zeroblob(32))`)
		}},
		{"tail deleted", func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM events WHERE seq = 3`)
			mustExec(t, db, `DELETE FROM tree WHERE leaf = 2`)
		}},
		{"head deleted", func(t *testing.T, db *sql.DB) { mustExec(t, db, `DELETE FROM head`) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := storeWith(t, 3)
			tt.tamper(t, rawDB(t, dir))
			s, err := Open(context.Background(), Config{Dir: dir})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrTampered) {
				t.Errorf("Open error = %v, want ErrTampered", err)
			}
		})
	}
}

// A rollback of the whole tail (events, tree, checkpoints and head restored
// to an older signed state) is invisible locally; only a checkpoint exported
// earlier exposes it.
func TestVerifyTruncationAgainstExportedCheckpoint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 7)
	old, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 3)
	exported, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exported.Size != 10 || old.Size != 7 {
		t.Fatalf("checkpoint sizes %d, %d; want 7, 10", old.Size, exported.Size)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	db := rawDB(t, dir)
	mustExec(t, db, `DELETE FROM events WHERE seq > 7`)
	mustExec(t, db, `DELETE FROM tree WHERE leaf >= 7`)
	mustExec(t, db, `DELETE FROM checkpoints WHERE size > 7`)
	mustExec(t, db, `UPDATE head SET note = ?`, old.Note)
	db.Close()

	if rep, err := Verify(ctx, dir, nil); err != nil {
		t.Fatalf("Verify without exported checkpoint: %v (%v); a consistent rollback should pass locally", err, kinds(rep))
	}
	rep, err := Verify(ctx, dir, exported.Bytes())
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("Verify error = %v, want ErrTampered", err)
	}
	if got, want := kinds(rep), []string{"truncated@8"}; !slices.Equal(got, want) {
		t.Errorf("problems = %v, want %v", got, want)
	}
	if rep.Exported != 10 {
		t.Errorf("report exported size = %d, want 10", rep.Exported)
	}

	forged := bytes.Replace(exported.Bytes(), []byte("\n10\n"), []byte("\n11\n"), 1)
	rep, err = Verify(ctx, dir, forged)
	if !errors.Is(err, ErrTampered) || !slices.Contains(kinds(rep), "bad_signature@0") {
		t.Errorf("forged exported checkpoint: err %v problems %v, want bad_signature", err, kinds(rep))
	}
}

func TestVerifyWithExternalKeys(t *testing.T) {
	dir := storeWith(t, 3)
	_, vkey, err := note.GenerateKey(rand.Reader, DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyWith(context.Background(), VerifyConfig{Dir: dir, VerifierKeys: []string{vkey}})
	if !errors.Is(err, ErrTampered) || !slices.Contains(kinds(rep), "bad_signature@0") {
		t.Errorf("with a foreign key: err %v problems %v, want bad_signature", err, kinds(rep))
	}
}

func TestCompactRangeMatchesTlog(t *testing.T) {
	var c compactRange
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = stored[x]
		}
		return out, nil
	})
	for n := int64(0); n <= 70; n++ {
		want, err := tlog.TreeHash(n, r)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.root(); got != want {
			t.Fatalf("size %d: root %x, want %x", n, got, want)
		}
		data := []byte(fmt.Sprint("leaf ", n))
		hs, err := tlog.StoredHashes(n, data, r)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, hs...)
		c.append(tlog.RecordHash(data))
	}
}

func TestRecordHead(t *testing.T) {
	var prev [32]byte
	prev[0], prev[31] = 0xab, 0xcd
	tests := []struct {
		name    string
		rec     []byte
		wantSeq int64
		wantErr bool
	}{
		{"fast path", BuildRecord(42, prev, []byte(`{"id":"x"}`)), 42, false},
		{"reordered members", []byte(`{"prev_hash":"` + hex.EncodeToString(prev[:]) + `","seq":7}`), 7, false},
		{"no seq", []byte(`{"prev_hash":"` + hex.EncodeToString(prev[:]) + `"}`), 0, true},
		{"bad hash", []byte(`{"seq":1,"prev_hash":"zz"}`), 0, true},
		{"not json", []byte(`{"seq":1,`), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, p, err := recordHead(tt.rec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (seq != tt.wantSeq || p != prev) {
				t.Errorf("got seq %d prev %x, want %d %x", seq, p, tt.wantSeq, prev)
			}
		})
	}
}

// tailOf strips seq and prev_hash from a record written by buildRecord.
func tailOf(rec []byte) []byte {
	return append([]byte("{"), rec[bytes.Index(rec, []byte(`"id":`)):]...)
}

var testTime = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

package audit

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// TestVerifySplitReadFindsWhatOneReaderFinds builds a trail long enough for
// verify's two readers and tampers with a row in each reader's ranges, at
// a range boundary, and beyond both open ends; the report must name each.
func TestVerifySplitReadFindsWhatOneReaderFinds(t *testing.T) {
	n := 3*rowsRange + 10 // ranges 0..3: reader 0 reads 0 and 2, reader 1 reads 1 and 3
	dir := t.TempDir()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	bulkLoad(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The clean trail takes the two-reader path and reads every row once.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(2)
	tx, err := db.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := beginTrail(t.Context(), db, tx)
	if err != nil || tr.tx2 == nil {
		t.Fatalf("beginTrail: %v (second reader %v), want two readers for %d events", err, tr.tx2 != nil, n)
	}
	var seqs []int64
	if err := tr.Rows(t.Context(), func(b []StoredRow) error {
		for _, r := range b {
			seqs = append(seqs, r.Seq)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tr.tx2.Rollback()
	tx.Rollback()
	db.Close()
	if len(seqs) != n || !slices.IsSorted(seqs) || seqs[0] != 1 || seqs[n-1] != int64(n) {
		t.Fatalf("two readers gave %d rows (sorted %v, %v..%v), want 1..%d in order", len(seqs), slices.IsSorted(seqs), seqs[0], seqs[len(seqs)-1], n)
	}
	if rep, err := Verify(t.Context(), dir, nil); err != nil || !rep.OK() || rep.Events != int64(n) {
		t.Fatalf("clean trail: %v, %d events, problems %v", err, rep.Events, rep.Problems)
	}

	raw := rawDB(t, dir)
	edit := func(seq int64) {
		rec, _ := record(t, raw, seq)
		rec = bytes.Clone(rec)
		rec[len(rec)*3/4] ^= 0x01 // one bit, past the record's head
		mustExec(t, raw, `UPDATE events SET record = ? WHERE seq = ?`, rec, seq)
	}
	edit(100)                                                           // range 0, reader 0
	edit(rowsRange + 1)                                                 // first row of range 1, reader 1
	edit(2 * rowsRange)                                                 // last row of range 1
	edit(3*rowsRange + 5)                                               // range 3, the last, reader 1
	mustExec(t, raw, `DELETE FROM events WHERE seq = ?`, 2*rowsRange+7) // range 2, reader 0
	rec, hash := record(t, raw, 50)
	mustExec(t, raw, `INSERT INTO events (seq, record, hash, id, action, outcome, actor_subject, actor_email,
		request_id, target_request_id, grant_id, service, env, time_ns)
		SELECT ?, ?, ?, 'x'||id, action, outcome, actor_subject, actor_email, request_id, target_request_id,
		grant_id, service, env, time_ns FROM events WHERE seq = 50`, n+3, rec, hash) // past the end
	rep, _ := Verify(t.Context(), dir, nil) // an error names the first problem
	got := map[string]bool{}
	for _, p := range rep.Problems {
		got[fmt.Sprintf("%s@%d", p.Kind, p.Seq)] = true
	}
	for _, want := range []string{
		"modified@100",
		fmt.Sprintf("modified@%d", rowsRange+1),
		fmt.Sprintf("modified@%d", 2*rowsRange),
		fmt.Sprintf("modified@%d", 3*rowsRange+5),
		fmt.Sprintf("deleted@%d", 2*rowsRange+7),
	} {
		if !got[want] {
			t.Errorf("problems %v: no %s", kinds(rep), want)
		}
	}
	if !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Seq > int64(n) || p.Kind == ProblemInserted }) {
		t.Errorf("problems %v: nothing about the row past the end", kinds(rep))
	}
}

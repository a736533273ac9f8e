package audit

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func countRows(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.rdb.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAppendFailsClosedWithoutPartialWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	appendN(t, s, 3)
	fail := func(*sql.Tx) error { return errors.New("injected: disk gone") }
	s.beforeCommit.Store(&fail)

	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Go(func() { _, errs[i] = s.Append(ctx, testEvent(i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("append %d: error %v, want ErrUnavailable", i, err)
		}
	}
	for _, table := range []string{"events", "tree"} {
		if got := countRows(t, s, table); got != 3 {
			t.Errorf("%s rows after failed appends = %d, want 3", table, got)
		}
	}
	cp, err := s.LatestCheckpoint(ctx)
	if err != nil || cp.Size != 3 {
		t.Errorf("head after failed appends: size %d, %v; want 3", cp.Size, err)
	}

	s.beforeCommit.Store(nil)
	ev, err := s.Append(ctx, testEvent(99))
	if err != nil {
		t.Fatalf("Append after recovery: %v", err)
	}
	if ev.Seq != 4 {
		t.Errorf("seq after recovery = %d, want 4 (gapless)", ev.Seq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(ctx, dir, nil); err != nil {
		t.Errorf("Verify: %v %v", err, kinds(rep))
	}
}

func TestAppendFailsWhenDatabaseIsGone(t *testing.T) {
	s := openTest(t, t.TempDir())
	appendN(t, s, 1)
	s.wdb.Close() // the file handle is gone under the writer
	if _, err := s.Append(context.Background(), testEvent(1)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Append error = %v, want ErrUnavailable", err)
	}
	if err := s.Close(); err == nil {
		t.Errorf("Close succeeded, want the final checkpoint's failure")
	}
}

func TestAppendContextCanceled(t *testing.T) {
	s := openTest(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, testEvent(0)); !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Append error = %v, want ErrUnavailable and context.Canceled", err)
	}
}

// Checkpoints are written on a timer even when nothing is appended, so an
// auditor can tell a quiet hour from a deleted one.
func TestIdleCheckpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s, err := Open(context.Background(), Config{Dir: dir, CheckpointInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait()
		if got := countRows(t, s, "checkpoints"); got != 4 {
			t.Errorf("checkpoints after 3 idle minutes = %d, want 4 (open + 3)", got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		rows, err := rawDBNoTriggers(t, dir).Query(`SELECT note FROM checkpoints ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var times []time.Time
		for rows.Next() {
			var n string
			rows.Scan(&n)
			cp, err := ParseCheckpoint([]byte(n), s.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, cp.Time)
		}
		if len(times) != 5 || times[3].Sub(times[0]) != 3*time.Minute {
			t.Errorf("checkpoint times = %v, want 5 a minute apart", times)
		}
	})
}

func rawDBNoTriggers(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+dir+"/"+dbFile+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

const crashChildEnv = "AUDIT_CRASH_CHILD_DIR"

// TestCrashRecovery kills a process appending in a loop and checks that
// every acknowledged append survives, the chain continues and verifies.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns a subprocess")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int64]string{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		seq, _ := strconv.ParseInt(f[1], 10, 64)
		acked[seq] = f[2]
		if len(acked) == 1500 && !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child exited after %d acks before being killed", len(acked))
	}

	ctx := context.Background()
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	for seq, id := range acked {
		ev, err := s.Get(ctx, id)
		if err != nil || ev.Seq != seq {
			t.Errorf("acknowledged seq %d (%s): got seq %d, %v", seq, id, ev.Seq, err)
		}
	}
	ev, err := s.Append(ctx, testEvent(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged %d, log continued at seq %d", len(acked), ev.Seq)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(ctx, dir, nil); err != nil {
		t.Errorf("Verify after crash: %v %v", err, kinds(rep))
	}
}

func crashChild(dir string) {
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				ev, err := s.Append(context.Background(), testEvent(g*1_000_000+i))
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %d %s\n", ev.Seq, ev.ID)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

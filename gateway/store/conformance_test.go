package store

// Behaviour every Backend must show, run against SQLite and Redis alike.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// checkUpdateIsAtomic: a transaction whose fn fails writes nothing.
func checkUpdateIsAtomic(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Txn) error {
		if err := tx.PutGrant(&Grant{ID: "g1", State: GrantActive}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if _, err := s.Grant(ctx, "g1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("grant after failed txn: err = %v, want ErrNotFound (nothing half-written)", err)
	}
}

// checkConcurrentApproversOnlyOneWins: of eight racing read-modify-writes
// on one pending request, exactly one lands.
func checkConcurrentApproversOnlyOneWins(t *testing.T, s *Store) {
	t.Helper()
	ctx := context.Background()
	r := Request{ID: "r", State: StatePending, CreatedAt: time.Now()}
	if err := s.Update(ctx, func(tx *Txn) error { return tx.PutRequest(&r) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Update(ctx, func(tx *Txn) error {
				cur, err := tx.Request("r")
				if err != nil {
					return err
				}
				if cur.State != StatePending {
					return ErrConflict
				}
				cur.State = StateApproved
				cur.GrantID = fmt.Sprint(i)
				return tx.PutRequest(&cur)
			})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, ErrConflict) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("wins = %d, want exactly 1", wins)
	}
}

package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// Verify reads one consistent snapshot: while two replicas append as fast
// as they can, hundreds of verifications in a row report nothing. Each
// round waits for a fresh append first, so every round races a moving trail.
func TestVerifyWhileTwoReplicasAppend(t *testing.T) {
	e := newEnv(t)
	key := newKey(t)
	replicas := []*Audit{e.signedAudit(t, key), e.signedAudit(t, key)}
	verifier := e.signedAudit(t, key)
	ctx, cancel := context.WithCancel(context.Background())
	appended := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for i, a := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ctx.Err() == nil; k++ {
				if _, err := a.Append(ctx, event("grant.view", fmt.Sprintf("r%d-%d", i, k))); err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				select {
				case appended <- struct{}{}:
				default:
				}
			}
		}()
	}
	rounds := 300
	if testing.Short() {
		rounds = 100
	}
	var last int64
	for round := range rounds {
		<-appended
		rep, err := verifier.Verify(context.Background())
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatalf("round %d: %v\n%+v", round, err, rep.Problems)
		}
		if rep.Events < last {
			t.Fatalf("round %d: %d events, an earlier round saw %d", round, rep.Events, last)
		}
		last = rep.Events
	}
	cancel()
	wg.Wait()
	rep, err := verifier.Verify(context.Background())
	if err != nil || rep.Head != rep.Events {
		t.Fatalf("after the appends: %v, head %d of %d events", err, rep.Head, rep.Events)
	}
}

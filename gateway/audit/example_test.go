package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/loggate/loggate/gateway/audit"
)

// The gateway records an event before acting, fails closed when the trail
// cannot be written, and exports checkpoints so truncation can be detected.
func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := audit.Open(ctx, audit.Config{Dir: dir})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	// A detached deadline: the client going away must not cancel the audit write.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	ev, err := store.Append(actx, audit.Event{
		Action:  "grant.issued",
		Actor:   audit.Actor{Kind: audit.ActorUser, Subject: "u-123", Email: "dev@example.com"},
		Target:  audit.Target{GrantID: "grt_1", Service: "checkout", Env: "prod"},
		Outcome: audit.OutcomeSuccess,
	})
	cancel()
	if errors.Is(err, audit.ErrUnavailable) {
		fmt.Println("503: not granting") // fail closed
		return
	}
	fmt.Println("seq", ev.Seq)

	// Keep a checkpoint outside the store (WORM bucket, SIEM, ...).
	cp, _ := store.LatestCheckpoint(ctx)
	exported := filepath.Join(dir, "checkpoint.note")
	os.WriteFile(exported, cp.Bytes(), 0o644)
	store.Close()

	note, _ := os.ReadFile(exported)
	rep, err := audit.Verify(ctx, dir, note)
	fmt.Println("events", rep.Events, "ok", rep.OK(), "err", err)
	// Output:
	// seq 1
	// events 1 ok true err <nil>
}

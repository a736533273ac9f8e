package gateway

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/loggate/loggate/gateway/api"
	"github.com/loggate/loggate/gateway/store"
)

// hookBackend runs a one-shot hook after a Get of the armed kind, before
// the caller sees the (by then stale) record.
type hookBackend struct {
	store.Backend
	mu    sync.Mutex
	kind  string
	after func() // guarded by mu
}

func (b *hookBackend) Get(ctx context.Context, kind, id string) (store.Record, error) {
	rec, err := b.Backend.Get(ctx, kind, id)
	b.mu.Lock()
	f := b.after
	if kind == b.kind {
		b.after = nil
	} else {
		f = nil
	}
	b.mu.Unlock()
	if f != nil {
		f()
	}
	return rec, err
}

func (b *hookBackend) arm(kind string, f func()) {
	b.mu.Lock()
	b.kind, b.after = kind, f
	b.mu.Unlock()
}

// A revocation that lands after the tail read the grant but before the
// tail registered for control events must still stop the tail: its
// broadcast found no tail to end, so the tail has to notice by itself.
func TestTailRevokedBetweenGrantReadAndRegistration(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	inner, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "hooked.db"))
	if err != nil {
		t.Fatal(err)
	}
	hb := &hookBackend{Backend: inner}
	st := store.New(hb)
	t.Cleanup(func() { st.Close() })
	h.srv.cfg.Store, h.store = st, st
	if _, err := h.srv.CreateSource(ctx, systemActor, "test", "", []store.StreamRef{{Service: "checkout", Env: "staging"}}); err != nil {
		t.Fatal(err)
	}
	g := h.grantFor("alice", "30m")

	hb.arm(store.KindGrant, func() {
		if got := h.call("alice", "POST", "/api/v1/grants/"+g.ID+"/revoke", map[string]any{"reason": "done"}, nil); got != http.StatusOK {
			t.Errorf("revoke: status %d, want 200", got)
		}
	})
	conn, resp, err := h.dialTail("alice", g.ID)
	if err == nil {
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		var m map[string]any
		if rerr := conn.ReadJSON(&m); rerr != nil || m["type"] != "end" {
			t.Fatalf("tail of a revoked grant stayed open: next message %v (err %v), want an end or a refusal", m, rerr)
		}
		return
	}
	if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tail of a revoked grant: err %v, response %v; want 403", err, resp)
	}
}

// A pending request whose approval window has passed is not approvable,
// even before the sweep marks it lapsed.
func TestApproveAfterPendingWindowRefused(t *testing.T) {
	h := newHarness(t)
	req := h.ask("alice", prodRequest(), http.StatusCreated)
	if req.State != store.StatePending || req.PendingUntil == nil {
		t.Fatalf("prod request: state %q, pending_until %v; want pending with a deadline", req.State, req.PendingUntil)
	}
	h.clock.Advance(req.PendingUntil.Sub(h.clock.Now()) + time.Minute)
	var out api.Request
	if got, want := h.call("bob", "POST", "/api/v1/requests/"+req.ID+"/approve", map[string]any{"comment": "ok"}, &out), http.StatusConflict; got != want {
		t.Fatalf("approve after the pending window: status %d (state %q, grant %v), want %d", got, out.State, out.Grant, want)
	}
}

package auth

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestMemorySessionsPersistAndExpire: records survive reopening the file,
// deletions too, and expired records are neither returned nor kept.
func TestMemorySessionsPersistAndExpire(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "sessions.json")
	m, err := NewMemorySessions(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	live := SessionRecord{ID: SessionHandle("a"), UserID: "iss|alice", Created: now, Expires: now.Add(time.Hour)}
	short := SessionRecord{ID: SessionHandle("b"), UserID: "iss|bob", Created: now, Expires: now.Add(time.Minute)}
	gone := SessionRecord{ID: SessionHandle("c"), UserID: "iss|carol", Created: now, Expires: now.Add(time.Hour)}
	for _, r := range []SessionRecord{live, short, gone} {
		if err := m.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := m.Delete(ctx, gone.ID); !ok || err != nil {
		t.Fatalf("Delete = %v, %v; want true", ok, err)
	}
	if ok, _ := m.Delete(ctx, gone.ID); ok {
		t.Error("second Delete reported the record existed")
	}
	// A refresh finishing after the session was ended must not bring it back.
	if ok, err := m.Update(ctx, gone); ok || err != nil {
		t.Errorf("Update of an ended session = %v, %v; want false", ok, err)
	}
	if _, ok, _ := m.Get(ctx, gone.ID); ok {
		t.Error("Update resurrected an ended session")
	}
	if ok, err := m.Update(ctx, live); !ok || err != nil {
		t.Errorf("Update of a live session = %v, %v; want true", ok, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("sessions file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	now = now.Add(2 * time.Minute) // short has expired
	m2, err := NewMemorySessions(path, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m2.Get(ctx, live.ID); !ok {
		t.Error("live record lost across reopen")
	}
	for _, id := range []string{short.ID, gone.ID} {
		if _, ok, _ := m2.Get(ctx, id); ok {
			t.Errorf("record %s returned after it expired or was deleted", id)
		}
	}
	if recs, _ := m2.List(ctx); len(recs) != 1 || recs[0].UserID != "iss|alice" {
		t.Errorf("List = %+v, want alice's only", recs)
	}
}

// TestSessionHandleIsOneWay: the public handle is stable, distinct per
// session, and is not the session id.
func TestSessionHandleIsOneWay(t *testing.T) {
	a, b := SessionHandle("session-one"), SessionHandle("session-two")
	if a != SessionHandle("session-one") || a == b || len(a) != 32 || a == "session-one" {
		t.Errorf("handles %q, %q: want stable, distinct, 32 hex digits", a, b)
	}
}

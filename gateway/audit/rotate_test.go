package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	appendN(t, s, 3)
	old := s.VerifierKey()
	oldCP, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin := Actor{Kind: ActorUser, Subject: "admin"}
	if err := s.RotateKey(ctx, admin); err != nil {
		t.Fatal(err)
	}
	cur := s.VerifierKey()
	if cur == old {
		t.Fatal("verifier key unchanged after rotation")
	}
	if got := s.VerifierKeys(); !slices.Equal(got, []string{old, cur}) {
		t.Errorf("VerifierKeys = %v, want [old new]", got)
	}
	page, err := s.Search(ctx, Query{Action: "config.key_rotated"})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("key_rotated events: %v, %v", page.Items, err)
	}
	ev := page.Items[0]
	if ev.Details["old_key"] != old || ev.Details["new_key"] != cur || ev.Actor.Subject != "admin" {
		t.Errorf("key_rotated event details %v actor %v", ev.Details, ev.Actor)
	}
	// The event is covered by a checkpoint that only the new key verifies.
	cp, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size < ev.Seq {
		t.Errorf("latest checkpoint size %d does not cover the rotation event at %d", cp.Size, ev.Seq)
	}
	if _, err := ParseCheckpoint(cp.Bytes(), cur); err != nil {
		t.Errorf("new checkpoint under the new key: %v", err)
	}
	if _, err := ParseCheckpoint(cp.Bytes(), old); !errors.Is(err, ErrTampered) {
		t.Errorf("new checkpoint under the old key: %v, want ErrTampered", err)
	}
	if _, err := ParseCheckpoint(oldCP.Bytes(), old); err != nil {
		t.Errorf("old checkpoint under the old key: %v", err)
	}
	p, err := s.Proof(ctx, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyInclusion(p, s.VerifierKeys()...); err != nil {
		t.Errorf("proof after rotation: %v", err)
	}
	appendN(t, s, 2)
	s.Close()

	st, err := os.Stat(filepath.Join(dir, keysDir, privateKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	mustVerify(t, dir)
	// A restart signs with the rotated key.
	s = openTest(t, dir)
	if s.VerifierKey() != cur {
		t.Errorf("reopened store signs with %s, want the rotated key", s.VerifierKey())
	}
	appendN(t, s, 1)
	s.Close()
	if rep := mustVerify(t, dir); rep.Checkpoints < 3 {
		t.Errorf("checked %d checkpoints, want the old and new keys' ones", rep.Checkpoints)
	}
	// Verifying with only the new key flags the checkpoints signed before.
	if _, err := VerifyWith(ctx, VerifyConfig{Dir: dir, VerifierKeys: []string{cur}}); !errors.Is(err, ErrTampered) {
		t.Errorf("Verify with only the new key: %v, want ErrTampered for old checkpoints", err)
	}
}

func TestRotateKeyRefusedForKeyFile(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	keyFile := filepath.Join(dir, keysDir, privateKeyFile)
	s.Close()
	s, err := Open(context.Background(), Config{Dir: dir, SigningKeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RotateKey(context.Background(), Actor{Kind: ActorSystem}); !errors.Is(err, ErrInvalid) {
		t.Errorf("RotateKey with SigningKeyFile: %v, want ErrInvalid", err)
	}
}

func TestOpenViews(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	view := func(action, outcome, id string) Event {
		ev := Event{Action: action, Actor: Actor{Kind: ActorUser, Subject: "u"}, Outcome: outcome,
			Target: Target{GrantID: "g-" + id}}
		if id != "" {
			ev.Details = map[string]any{"view_id": id, "entries": 3}
		}
		got, err := s.Append(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	view("stream.opened", OutcomeSuccess, "v1")
	v2 := view("stream.opened", OutcomeSuccess, "v2")
	view("stream.opened", OutcomeDenied, "v3") // never opened
	view("stream.closed", OutcomeSuccess, "v1")
	view("stream.opened", OutcomeSuccess, "") // no view id: cannot be matched
	v4 := view("stream.opened", OutcomeSuccess, "v4")
	view("stream.progress", OutcomeSuccess, "v4")
	view("stream.opened", OutcomeSuccess, "v5")
	view("stream.closed", OutcomeInterrupted, "v5")

	got, err := s.OpenViews(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range got {
		ids = append(ids, ev.ID)
	}
	if want := []string{v2.ID, v4.ID}; !slices.Equal(ids, want) {
		t.Errorf("OpenViews = %v, want v2 and v4 (%v)", ids, want)
	}
	if len(got) == 2 && (got[0].Target.GrantID != "g-v2" || got[0].Details["view_id"] != "v2") {
		t.Errorf("open view event %+v lacks its target or details", got[0])
	}
}

func TestStatsCountUnavailableAppends(t *testing.T) {
	s := openTest(t, t.TempDir())
	appendN(t, s, 1)
	s.Close()
	if _, err := s.Append(context.Background(), testEvent(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := s.Append(context.Background(), Event{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid Append: %v", err)
	}
	if got := s.Stats().Unavailable; got != 1 {
		t.Errorf("Stats.Unavailable = %d, want 1 (invalid events are not outages)", got)
	}
}

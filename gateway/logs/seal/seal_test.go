package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func mustParse(t *testing.T, text []byte) *Ring {
	t.Helper()
	r, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := mustParse(t, Generate())
	plain := []byte(`{"message":"card 4111 1111 1111 1111 declined"}`)
	sealed := r.Seal(nil, plain, "checkout", "prod", 42)
	if bytes.Contains(sealed, []byte("declined")) {
		t.Fatal("sealed entry contains its plaintext")
	}
	if id, ok := KeyID(sealed); !ok || id != r.NewestID() {
		t.Errorf("KeyID = %q, %v; want %q", id, ok, r.NewestID())
	}
	if got := len(sealed) - len(plain); got != Overhead {
		t.Errorf("overhead = %d, want %d", got, Overhead)
	}
	got, err := r.Open(nil, sealed, "checkout", "prod", 42)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v; want %q", got, err, plain)
	}
}

// TestMovedEntryFailsToOpen: the stream and position are authenticated.
func TestMovedEntryFailsToOpen(t *testing.T) {
	r := mustParse(t, Generate())
	sealed := r.Seal(nil, []byte("secret line"), "checkout", "prod", 7)
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name, service, env string
		seq                int64
		b                  []byte
	}{
		{"other seq", "checkout", "prod", 8, sealed},
		{"other env", "checkout", "staging", 7, sealed},
		{"other service", "payments", "prod", 7, sealed},
		{"boundary shift", "checkoutp", "rod", 7, sealed},
		{"flipped bit", "checkout", "prod", 7, tampered},
		{"truncated", "checkout", "prod", 7, sealed[:Overhead-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Open(nil, tc.b, tc.service, tc.env, tc.seq)
			if !errors.Is(err, ErrNotAuthentic) && !errors.Is(err, ErrNotSealed) {
				t.Fatalf("Open = %v, want ErrNotAuthentic or ErrNotSealed", err)
			}
		})
	}
}

func TestOldKeysStayReadable(t *testing.T) {
	oldText := Generate()
	old := mustParse(t, oldText)
	sealed := old.Seal(nil, []byte("line"), "a", "b", 1)
	newText, newID, err := Prepend(oldText)
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, newText)
	if r.NewestID() != newID || len(r.IDs()) != 2 {
		t.Fatalf("after Prepend: ids %v, newest %s; want %s first of two", r.IDs(), r.NewestID(), newID)
	}
	if got, err := r.Open(nil, sealed, "a", "b", 1); err != nil || string(got) != "line" {
		t.Fatalf("old entry with rotated ring: %q, %v", got, err)
	}
	if id, _ := KeyID(r.Seal(nil, []byte("x"), "a", "b", 2)); id != newID {
		t.Errorf("new entries sealed with %s, want newest %s", id, newID)
	}
	// Without the old key, the error names it.
	only := mustParse(t, Generate())
	_, err = only.Open(nil, sealed, "a", "b", 1)
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.ID != old.NewestID() || !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open with a ring missing the key = %v, want UnknownKeyError{%s}", err, old.NewestID())
	}
}

func TestParseRejectsBadKeyFiles(t *testing.T) {
	good := strings.Fields(string(Generate()[len(fileHeader):]))
	short := base64.RawURLEncoding.EncodeToString(make([]byte, 16))
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "no keys"},
		{"only comments", "# nothing\n\n", "no keys"},
		{"short key", "lgk1 0123abcd " + short + "\n", "key 0123abcd is 16 bytes, want 32"},
		{"not base64", "lgk1 0123abcd !!!\n", "not base64url"},
		{"bad id", "lgk1 XYZ " + good[2] + "\n", "not 8 lower-case hex"},
		{"wrong prefix", "key 0123abcd " + good[2] + "\n", "line 1"},
		{"repeated id", "lgk1 0123abcd " + good[2] + "\nlgk1 0123abcd " + good[2] + "\n", "repeats line 1"},
		{"pem", "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n", "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestGeneratedFilesDiffer(t *testing.T) {
	a, b := mustParse(t, Generate()), mustParse(t, Generate())
	if a.NewestID() == b.NewestID() {
		t.Error("two generated key files share a key id")
	}
	sealed := a.Seal(nil, []byte("x"), "s", "e", 1)
	if _, err := b.Open(nil, sealed, "s", "e", 1); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("open with another file = %v, want ErrUnknownKey", err)
	}
}

func BenchmarkSeal(b *testing.B) {
	r, _ := Parse(Generate())
	plain := bytes.Repeat([]byte("x"), 300)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		buf = r.Seal(buf[:0], plain, "checkout", "prod", 1)
	}
}

func BenchmarkOpen(b *testing.B) {
	r, _ := Parse(Generate())
	plain := bytes.Repeat([]byte("x"), 300)
	sealed := r.Seal(nil, plain, "checkout", "prod", 1)
	buf := make([]byte, 0, 512)
	b.SetBytes(int64(len(plain)))
	for b.Loop() {
		buf, _ = r.Open(buf[:0], sealed, "checkout", "prod", 1)
	}
}

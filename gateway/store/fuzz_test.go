package store

import (
	"errors"
	"testing"
	"time"
)

// FuzzDecodeCursor: a page cursor from a client never panics the store; a
// cursor it accepts round-trips through EncodeCursor.
func FuzzDecodeCursor(f *testing.F) {
	f.Add(EncodeCursor(time.Unix(0, 1772273472345678901), "req_abc"))
	f.Add("")
	f.Add("bm90LWEtY3Vyc29y")
	f.Add("LTk6eA") // "-9:x"
	f.Fuzz(func(t *testing.T, c string) {
		ts, id, err := DecodeCursor(c)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
			return
		}
		ts2, id2, err := DecodeCursor(EncodeCursor(ts, id))
		if err != nil || !ts2.Equal(ts) || id2 != id {
			t.Fatalf("round trip of (%v, %q): (%v, %q, %v)", ts, id, ts2, id2, err)
		}
	})
}

package audit

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// decodeLowerHex agrees with encoding/hex on lower-case hex and refuses
// everything else, upper case included (the record's canonical form).
func FuzzDecodeLowerHex(f *testing.F) {
	f.Add(strings.Repeat("0f", 32))
	f.Add(strings.Repeat("AB", 32))
	f.Add(strings.Repeat("zz", 32))
	f.Add("0123456789abcdef")
	f.Fuzz(func(t *testing.T, s string) {
		if len(s)%2 != 0 {
			return
		}
		dst := make([]byte, len(s)/2)
		ok := decodeLowerHex(dst, []byte(s))
		want, err := hex.DecodeString(s)
		lower := err == nil && s == strings.ToLower(s)
		if ok != lower {
			t.Fatalf("decodeLowerHex(%q) = %v, want %v", s, ok, lower)
		}
		if ok && !bytes.Equal(dst, want) {
			t.Fatalf("decodeLowerHex(%q) = %x, want %x", s, dst, want)
		}
	})
}

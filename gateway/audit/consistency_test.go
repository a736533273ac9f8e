package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

func TestConsistencyProof(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	roots := map[int64]tlog.Hash{}
	for n := int64(1); n <= 40; n++ {
		appendN(t, s, 1)
		cp, err := s.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if roots[n], err = cp.Root(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range [][2]int64{{1, 1}, {1, 40}, {7, 8}, {8, 8}, {13, 32}, {16, 33}, {39, 40}, {40, 40}} {
		p, err := s.Consistency(ctx, r[0], r[1])
		if err != nil {
			t.Fatalf("Consistency(%d, %d): %v", r[0], r[1], err)
		}
		if err := p.Check(roots[r[0]], roots[r[1]]); err != nil {
			t.Errorf("Check(%d, %d) with the roots signed at the time: %v", r[0], r[1], err)
		}
		b, _ := json.Marshal(p)
		var back ConsistencyProof
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := VerifyConsistency(back, s.VerifierKey()); err != nil {
			t.Errorf("VerifyConsistency(%d, %d): %v", r[0], r[1], err)
		}
		if r[0] == r[1] {
			continue
		}
		// Every mutation is rejected: another old root (a fork), a flipped
		// bit in any hash, a missing or extra hash.
		other := roots[r[0]]
		other[0] ^= 1
		if err := p.Check(other, roots[r[1]]); !errors.Is(err, ErrTampered) {
			t.Errorf("(%d, %d) with a forked old root: %v, want ErrTampered", r[0], r[1], err)
		}
		for i := range p.Hashes {
			m := p
			m.Hashes = append([]string(nil), p.Hashes...)
			h, _ := DecodeHash(m.Hashes[i])
			h[5] ^= 0x10
			m.Hashes[i] = base64.StdEncoding.EncodeToString(h[:])
			if err := m.Check(roots[r[0]], roots[r[1]]); err == nil {
				t.Errorf("(%d, %d): hash %d modified still checks", r[0], r[1], i)
			}
		}
		if len(p.Hashes) > 0 {
			m := p
			m.Hashes = p.Hashes[1:]
			if err := m.Check(roots[r[0]], roots[r[1]]); err == nil {
				t.Errorf("(%d, %d): removed component still checks", r[0], r[1])
			}
		}
		m := p
		m.Hashes = append(append([]string(nil), p.Hashes...), p.Hashes[0])
		if err := m.Check(roots[r[0]], roots[r[1]]); err == nil {
			t.Errorf("(%d, %d): trailing garbage still checks", r[0], r[1])
		}
	}
}

func TestConsistencyRange(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	appendN(t, s, 5)
	for _, tc := range []struct {
		from, to int64
		param    string
	}{{0, 5, "from"}, {-1, 5, "from"}, {1, 0, "to"}, {4, 3, "from"}, {1, 6, "to"}, {6, 6, "to"}} {
		_, err := s.Consistency(ctx, tc.from, tc.to)
		var re *RangeError
		if !errors.As(err, &re) || re.Param != tc.param || !errors.Is(err, ErrInvalid) {
			t.Errorf("Consistency(%d, %d) = %v, want a RangeError on %q", tc.from, tc.to, err, tc.param)
		}
	}
}

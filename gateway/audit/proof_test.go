package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestInclusionProof(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	evs := appendN(t, s, 37)
	for _, i := range []int{0, 1, 17, 31, 36} {
		p, err := s.Proof(ctx, evs[i].ID)
		if err != nil {
			t.Fatalf("Proof(%d): %v", i, err)
		}
		if p.LeafIndex != int64(i) || p.TreeSize != 37 || p.Seq != int64(i+1) {
			t.Errorf("proof %d: leaf %d size %d seq %d, want %d, 37, %d", i, p.LeafIndex, p.TreeSize, p.Seq, i, i+1)
		}
		// Check it the way an outside verifier would: tlog directly.
		proof, err := p.RecordProof()
		if err != nil {
			t.Fatal(err)
		}
		root, err := p.Checkpoint.Root()
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(proof, p.TreeSize, root, p.LeafIndex, tlog.RecordHash(p.Record)); err != nil {
			t.Errorf("tlog.CheckRecord(%d): %v", i, err)
		}
		// The record is the event: its hash is the chain hash.
		_, prev, err := recordHead(p.Record)
		if err != nil {
			t.Fatal(err)
		}
		if h := ChainHash(prev, p.Record); hex.EncodeToString(h[:]) != evs[i].Hash {
			t.Errorf("proof %d: record hashes to %x, want %s", i, h, evs[i].Hash)
		}
		// And after a JSON round trip, with only the verifier key.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back InclusionProof
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := VerifyInclusion(back, s.VerifierKey()); err != nil {
			t.Errorf("VerifyInclusion(%d): %v", i, err)
		}
	}

	p, err := s.Proof(ctx, evs[5].ID)
	if err != nil {
		t.Fatal(err)
	}
	bad := p
	bad.Record = bytes.Replace(p.Record, []byte(`"reason":"because`), []byte(`"reason":"Because`), 1)
	if err := VerifyInclusion(bad, s.VerifierKey()); !errors.Is(err, ErrTampered) {
		t.Errorf("altered record: %v, want ErrTampered", err)
	}
	bad = p
	bad.LeafIndex = 6
	if err := VerifyInclusion(bad, s.VerifierKey()); !errors.Is(err, ErrTampered) {
		t.Errorf("wrong leaf index: %v, want ErrTampered", err)
	}
	if _, err := s.Proof(ctx, "evt_missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Proof(unknown) = %v, want ErrNotFound", err)
	}
}

func TestCheckpointSignature(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	appendN(t, s, 4)
	cp, err := s.LatestCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 4 || cp.Origin != DefaultOrigin || cp.Time.IsZero() || cp.Signature == "" {
		t.Errorf("checkpoint = %+v, want size 4, origin %s, time and signature set", cp, DefaultOrigin)
	}
	// Verify with nothing but the raw Ed25519 public key.
	vkey, err := note.NewEd25519VerifierKey(DefaultOrigin, s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if vkey != s.VerifierKey() {
		t.Errorf("VerifierKey = %s, want %s", s.VerifierKey(), vkey)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(cp.Bytes(), note.VerifierList(v))
	if err != nil {
		t.Fatalf("note.Open: %v", err)
	}
	if !strings.HasPrefix(n.Text, DefaultOrigin+"\n4\n"+cp.RootHash+"\ntime ") {
		t.Errorf("note text = %q", n.Text)
	}
	pub, err := PublicKeyFromVerifier(vkey)
	if err != nil || !pub.Equal(s.PublicKey()) {
		t.Errorf("PublicKeyFromVerifier = %x, %v; want %x", pub, err, s.PublicKey())
	}
	tampered := strings.Replace(cp.Text(), "\n4\n", "\n5\n", 1)
	if _, err := ParseCheckpoint([]byte(tampered), vkey); !errors.Is(err, ErrTampered) {
		t.Errorf("ParseCheckpoint(tampered) = %v, want ErrTampered", err)
	}
	parsed, err := ParseCheckpoint(cp.Bytes(), vkey)
	if err != nil || parsed != cp {
		t.Errorf("ParseCheckpoint = %+v, %v; want %+v", parsed, err, cp)
	}
}

func TestExportNDJSONIsVerifiableLineByLine(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	evs := appendN(t, s, 12)
	var buf bytes.Buffer
	if err := s.Export(ctx, &buf, FormatNDJSON, Query{}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	prev := make([]byte, 32)
	i := 0
	for sc.Scan() {
		line := sc.Bytes()
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		// Strip the trailing hash member to get the hashed bytes back.
		suffix := `,"hash":"` + ev.Hash + `"}`
		rec, ok := bytes.CutSuffix(line, []byte(suffix))
		if !ok {
			t.Fatalf("line %d does not end with its hash member", i)
		}
		rec = append(rec, '}')
		h := sha256.Sum256(append(append([]byte(nil), prev...), rec...))
		if hex.EncodeToString(h[:]) != ev.Hash || ev.Hash != evs[i].Hash || ev.Seq != int64(i+1) {
			t.Fatalf("line %d: recomputed %x, line hash %s, appended hash %s", i, h, ev.Hash, evs[i].Hash)
		}
		prev = h[:]
		i++
	}
	if i != 12 {
		t.Errorf("lines = %d, want 12", i)
	}

	buf.Reset()
	if err := s.Export(ctx, &buf, FormatNDJSON, Query{Action: "grant.issued", Limit: 2}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Errorf("filtered+limited export lines = %d, want 2", got)
	}
}

func TestExportCSV(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	appendN(t, s, 3)
	ev := testEvent(9)
	ev.Reason = "=HYPERLINK(\"http://x\")"
	if _, err := s.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Export(ctx, &buf, FormatCSV, Query{}); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || strings.Join(rows[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("rows = %d (header %v), want header + 4", len(rows), rows[0])
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	if got := rows[4][col["reason"]]; got != "'=HYPERLINK(\"http://x\")" {
		t.Errorf("formula cell = %q, want it quoted", got)
	}
	if got := rows[1][col["actor_email"]]; got != "alice@example.com" {
		t.Errorf("actor_email = %q", got)
	}
	if err := s.Export(ctx, &buf, "xml", Query{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Export(xml) = %v, want ErrInvalid", err)
	}
}

package audit

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a signed statement of the tree: its origin, size and root,
// and when it was signed. Note holds the complete signed note; write it to a
// file (Bytes) and hand it to Verify later to detect truncation.
//
// The note text follows C2SP tlog-checkpoint:
//
//	<origin>
//	<size>
//	<base64 root hash>
//	time <RFC 3339 UTC>
//
// followed by a blank line and one "— <origin> <base64 key hash||signature>"
// line (golang.org/x/mod/sumdb/note).
type Checkpoint struct {
	Origin   string    `json:"origin"`
	Size     int64     `json:"size"`
	RootHash string    `json:"root_hash"` // base64 (standard encoding)
	Time     time.Time `json:"time"`
	// KeyID names the signing key: "<key name>+<8 hex digits of the key
	// hash>", the start of its verifier key in the published key history
	// (GET /api/v1/audit/keys).
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // base64 of the 4-byte key hash followed by the Ed25519 signature
	Note      string `json:"note"`      // the signed note, exactly as signed
}

// Bytes returns the signed note, suitable for writing to a file.
func (c Checkpoint) Bytes() []byte { return []byte(c.Note) }

// Text returns the signed note as a string.
func (c Checkpoint) Text() string { return c.Note }

// Root returns the decoded root hash.
func (c Checkpoint) Root() (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(c.RootHash)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("%w: checkpoint root hash", ErrInvalid)
	}
	copy(h[:], b)
	return h, nil
}

func checkpointText(origin string, size int64, root tlog.Hash, t time.Time) string {
	return origin + "\n" + strconv.FormatInt(size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(root[:]) + "\n" +
		"time " + t.UTC().Format(time.RFC3339Nano) + "\n"
}

// signCheckpoint signs a checkpoint for a tree of the given size and root.
func signCheckpoint(k *Signer, origin string, size int64, root tlog.Hash, t time.Time) (Checkpoint, error) {
	text := checkpointText(origin, size, root, t)
	msg, err := note.Sign(&note.Note{Text: text}, k.signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("sign checkpoint: %w", err)
	}
	return parseCheckpointText(msg, nil)
}

// ParseCheckpoint parses a signed checkpoint and verifies its signature with
// one of the given note verifier keys ("<origin>+<hash>+<base64>", as
// returned by Store.VerifierKey). An invalid or unknown signature is an error
// wrapping ErrTampered.
func ParseCheckpoint(b []byte, verifierKeys ...string) (Checkpoint, error) {
	if len(verifierKeys) == 0 {
		return Checkpoint{}, fmt.Errorf("%w: no verifier key", ErrInvalid)
	}
	vs := make([]note.Verifier, 0, len(verifierKeys))
	for i, k := range verifierKeys {
		if slices.Contains(verifierKeys[:i], k) {
			continue // note rejects a key listed twice as ambiguous
		}
		v, err := note.NewVerifier(k)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("%w: verifier key: %v", ErrInvalid, err)
		}
		vs = append(vs, v)
	}
	return parseCheckpointText(b, note.VerifierList(vs...))
}

// parseCheckpointText parses a signed note; with known == nil the signature
// is not verified (used only for notes this process just signed).
func parseCheckpointText(b []byte, known note.Verifiers) (Checkpoint, error) {
	var text, sig, keyID string
	if known != nil {
		n, err := note.Open(b, known)
		if err != nil {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint signature: %v", ErrTampered, err)
		}
		text = n.Text
		sig = n.Sigs[0].Base64
		keyID = fmt.Sprintf("%s+%08x", n.Sigs[0].Name, n.Sigs[0].Hash)
	} else {
		t, sigs, ok := strings.Cut(string(b), "\n\n")
		if !ok {
			return Checkpoint{}, fmt.Errorf("%w: checkpoint: not a signed note", ErrInvalid)
		}
		text = t + "\n"
		if f := strings.Fields(sigs); len(f) >= 3 {
			sig = f[2]
			if raw, err := base64.StdEncoding.DecodeString(sig); err == nil && len(raw) >= 4 {
				keyID = fmt.Sprintf("%s+%08x", f[1], binary.BigEndian.Uint32(raw))
			}
		}
	}
	c, err := parseCheckpointBody(text)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Signature, c.KeyID = sig, keyID
	c.Note = string(b)
	return c, nil
}

func parseCheckpointBody(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: checkpoint: %s", ErrInvalid, what)
	}
	if len(lines) < 3 {
		return bad("too few lines")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return bad("size")
	}
	c := Checkpoint{Origin: lines[0], Size: size, RootHash: lines[2]}
	if _, err := c.Root(); err != nil {
		return bad("root hash")
	}
	for _, l := range lines[3:] {
		if v, ok := strings.CutPrefix(l, "time "); ok {
			if c.Time, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return bad("time")
			}
		}
	}
	return c, nil
}

var errNoCheckpoint = errors.New("no checkpoint yet")

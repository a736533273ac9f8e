package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// A key file is text: one key per line, newest first, as
//
//	lgk1 <id> <key>
//
// where id is 8 lower-case hex digits naming the key in sealed entries and
// error messages, and key is 32 random bytes in unpadded base64url. Empty
// lines and lines starting with '#' are ignored.
const keyLinePrefix = "lgk1"

// KeySize is the length of a backlog key (AES-256).
const KeySize = 32

// idLen is the length of a key id in the file and in sealed entries.
const idLen = 8

// Parse reads a key file's text. The first key is the newest.
func Parse(text []byte) (*Ring, error) {
	var keys []rawKey
	seen := map[string]int{}
	for i, line := range strings.Split(string(text), "\n") {
		n := i + 1
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != keyLinePrefix {
			return nil, fmt.Errorf("line %d: want %q, got %d fields", n, keyLinePrefix+" <id> <key>", len(f))
		}
		id, enc := f[1], f[2]
		if !validID(id) {
			return nil, fmt.Errorf("line %d: key id %q is not 8 lower-case hex digits", n, id)
		}
		if prev, ok := seen[id]; ok {
			return nil, fmt.Errorf("line %d: key id %s repeats line %d", n, id, prev)
		}
		seen[id] = n
		k, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("line %d: key %s is not base64url: %w", n, id, err)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("line %d: key %s is %d bytes, want %d", n, id, len(k), KeySize)
		}
		keys = append(keys, rawKey{id: id, key: k})
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys (generate one with `loggate keys generate`)")
	}
	return newRing(keys)
}

// LoadFile reads and parses the key file at path.
func LoadFile(path string) (*Ring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("backlog key file: %w", err)
	}
	r, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("backlog key file %s: %w", path, err)
	}
	return r, nil
}

// GenerateLine returns a new key line (with its newline) and its id.
func GenerateLine() (line, id string) {
	var idb [idLen / 2]byte
	k := make([]byte, KeySize)
	rand.Read(idb[:])
	rand.Read(k)
	id = hex.EncodeToString(idb[:])
	return fmt.Sprintf("%s %s %s\n", keyLinePrefix, id, base64.RawURLEncoding.EncodeToString(k)), id
}

// fileHeader starts every generated key file.
const fileHeader = "# loggate backlog encryption keys, newest first. Secret: keep this file mode 0600.\n"

// Generate returns the text of a new key file holding one new key.
func Generate() []byte {
	line, _ := GenerateLine()
	return []byte(fileHeader + line)
}

// Prepend returns text with a new key added as the newest (the existing
// keys stay, to open what they sealed), and the new key's id. text must
// parse.
func Prepend(text []byte) ([]byte, string, error) {
	if _, err := Parse(text); err != nil {
		return nil, "", err
	}
	line, id := GenerateLine()
	var b bytes.Buffer
	rest := text
	if bytes.HasPrefix(rest, []byte(fileHeader)) {
		rest = rest[len(fileHeader):]
	}
	b.WriteString(fileHeader)
	b.WriteString(line)
	b.Write(rest)
	return b.Bytes(), id, nil
}

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// A sealed entry is
//
//	version(1) = 0x01 | key id(8) | salt(16) | nonce(12) | AES-GCM ciphertext and tag
//
// The AES key is derived from the backlog key and the salt (HKDF-SHA256), a
// new salt per Ring and every sessionLimit entries, so that random 96-bit
// nonces never come near the GCM limit of 2^32 per key however long a
// backlog key is used. A plaintext entry (the JSON of a backlog written
// before encryption was turned on) starts with '{' and is never taken for
// a sealed one.
const (
	version      = 0x01
	saltLen      = 16
	nonceLen     = 12
	headerLen    = 1 + idLen + saltLen + nonceLen
	sessionLimit = 1 << 30
	// maxCached bounds the derived keys kept for Open; a backlog has one
	// salt per process start and per sessionLimit entries.
	maxCached = 4096
	hkdfInfo  = "loggate backlog entry v1"
)

// Overhead is how many bytes sealing adds to an entry.
const Overhead = headerLen + 16

var (
	// ErrUnknownKey: the entry was sealed with a key not in the ring. It
	// is wrapped in an *UnknownKeyError naming the key.
	ErrUnknownKey = errors.New("sealed with a key not in the key file")
	// ErrNotAuthentic: the entry does not open for this stream and
	// sequence number (moved, truncated or tampered with).
	ErrNotAuthentic = errors.New("sealed entry does not authenticate for this stream and position")
	// ErrNotSealed: the bytes are not a sealed entry.
	ErrNotSealed = errors.New("not a sealed entry")
)

// UnknownKeyError names the key a sealed entry needs.
type UnknownKeyError struct{ ID string }

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("sealed with key %s, which is not in the key file", e.ID)
}
func (e *UnknownKeyError) Unwrap() error { return ErrUnknownKey }

type rawKey struct {
	id  string
	key []byte
}

// Ring is the keys of one key file. It is safe for concurrent use.
type Ring struct {
	keys []rawKey // newest first; never modified
	byID map[string][]byte

	mu     sync.Mutex // guards the fields below
	salt   [saltLen]byte
	aead   cipher.AEAD // newest key under salt
	sealed int         // entries sealed under salt
	cache  map[cacheKey]cipher.AEAD
}

type cacheKey struct {
	id   string
	salt [saltLen]byte
}

func newRing(keys []rawKey) (*Ring, error) {
	r := &Ring{keys: keys, byID: make(map[string][]byte, len(keys)), cache: map[cacheKey]cipher.AEAD{}}
	for _, k := range keys {
		r.byID[k.id] = k.key
	}
	return r, nil
}

// NewestID is the id of the key new entries are sealed with.
func (r *Ring) NewestID() string { return r.keys[0].id }

// IDs lists the key ids, newest first.
func (r *Ring) IDs() []string {
	out := make([]string, len(r.keys))
	for i, k := range r.keys {
		out[i] = k.id
	}
	return out
}

// Has reports whether the ring holds the key id.
func (r *Ring) Has(id string) bool { _, ok := r.byID[id]; return ok }

func derive(key []byte, salt []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key, salt, hkdfInfo, KeySize)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// session returns the AEAD and header prefix to seal with, starting a new
// salt when needed.
func (r *Ring) session() (cipher.AEAD, [saltLen]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aead == nil || r.sealed >= sessionLimit {
		rand.Read(r.salt[:])
		a, err := derive(r.keys[0].key, r.salt[:])
		if err != nil {
			panic("seal: derive key: " + err.Error()) // only on a broken crypto library
		}
		r.aead, r.sealed = a, 0
		r.cache[cacheKey{r.keys[0].id, r.salt}] = a
	}
	r.sealed++
	return r.aead, r.salt
}

func (r *Ring) opener(id string, salt [saltLen]byte) (cipher.AEAD, error) {
	key, ok := r.byID[id]
	if !ok {
		return nil, &UnknownKeyError{ID: id}
	}
	ck := cacheKey{id, salt}
	r.mu.Lock()
	a := r.cache[ck]
	r.mu.Unlock()
	if a != nil {
		return a, nil
	}
	a, err := derive(key, salt[:])
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if len(r.cache) >= maxCached {
		clear(r.cache)
	}
	r.cache[ck] = a
	r.mu.Unlock()
	return a, nil
}

// additionalData binds a sealed entry to its header, stream and position.
func additionalData(buf []byte, header []byte, service, env string, seq int64) []byte {
	buf = append(buf, header[:1+idLen+saltLen]...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(service)))
	buf = append(buf, service...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(env)))
	buf = append(buf, env...)
	return binary.BigEndian.AppendUint64(buf, uint64(seq))
}

// Seal appends the sealed form of plain, entry seq of stream service/env,
// to dst and returns it.
func (r *Ring) Seal(dst, plain []byte, service, env string, seq int64) []byte {
	a, salt := r.session()
	// One allocation at most for the sealed form (none when the caller
	// sized dst), the nonce read in place: sealing runs once per ingested
	// line.
	dst = slices.Grow(dst, Overhead+len(plain))
	start := len(dst)
	dst = append(dst, version)
	dst = append(dst, r.keys[0].id...)
	dst = append(dst, salt[:]...)
	dst = dst[:len(dst)+nonceLen]
	nonce := dst[len(dst)-nonceLen:]
	rand.Read(nonce)
	var adb [128]byte
	ad := additionalData(adb[:0], dst[start:], service, env, seq)
	return a.Seal(dst, nonce, plain, ad)
}

// Open appends the plaintext of sealed, which must be entry seq of stream
// service/env, to dst and returns it. Errors wrap ErrNotSealed,
// ErrUnknownKey (an *UnknownKeyError) or ErrNotAuthentic.
func (r *Ring) Open(dst, sealed []byte, service, env string, seq int64) ([]byte, error) {
	id, ok := KeyID(sealed)
	if !ok || len(sealed) < Overhead {
		return nil, ErrNotSealed
	}
	var salt [saltLen]byte
	copy(salt[:], sealed[1+idLen:])
	a, err := r.opener(id, salt)
	if err != nil {
		return nil, err
	}
	var adb [128]byte
	ad := additionalData(adb[:0], sealed, service, env, seq)
	out, err := a.Open(dst, sealed[1+idLen+saltLen:headerLen], sealed[headerLen:], ad)
	if err != nil {
		return nil, ErrNotAuthentic
	}
	return out, nil
}

// IsSealed reports whether b has the header of a sealed entry.
func IsSealed(b []byte) bool {
	_, ok := KeyID(b)
	return ok
}

// KeyID returns the id of the key that sealed b, from its header.
func KeyID(b []byte) (string, bool) {
	if len(b) < 1+idLen || b[0] != version {
		return "", false
	}
	id := string(b[1 : 1+idLen])
	return id, validID(id)
}

// HeaderPrefixLen is how many leading bytes of a sealed entry KeyID needs,
// for stores that collect key ids without reading whole entries.
const HeaderPrefixLen = 1 + idLen

// Package secretbox encrypts secrets at rest (Toloka API keys, signing keys)
// with AES-256-GCM. Each sealed value carries its own random nonce and is
// bound to a context string (for example the credential id), so a sealed
// value copied onto another record does not open.
//
// A Box holds a key ring, newest key first, so the encryption key can be
// rotated without downtime: Seal always uses the newest key; Open opens
// what any key of the ring sealed. A sealed value is
//
//	version (1 byte, 1) || key id (4 bytes) || nonce (12 bytes) || ciphertext and tag
//
// where the key id is the first 4 bytes of the key's SHA-256 (not secret:
// `base64 -d | sha256sum | cut -c1-8` of a configured key shows it), so
// Open goes straight to the key that sealed it. The header is
// authenticated with the context. Values sealed before key rings existed
// (nonce || ciphertext, no header) still open: every key of the ring is
// tried (an AEAD refuses a wrong key reliably). Reseal rewrites a value
// under the newest key, which is what `crowdgate -reseal` does to every
// stored secret before an old key is dropped from the ring.
package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// The sealed format.
const (
	// version1 starts every value Seal returns.
	version1 byte = 1
	// KeyIDSize is how many bytes of a key's SHA-256 name it in a sealed
	// value.
	KeyIDSize  = 4
	headerSize = 1 + KeyIDSize
)

// Box seals with the newest key of its ring and opens with any. It is safe
// for concurrent use.
type Box struct {
	keys   []ringKey // newest first
	newest []byte    // the newest key, for DeriveKey
}

// ringKey is one key of the ring.
type ringKey struct {
	id   [KeyIDSize]byte
	aead cipher.AEAD
}

// New returns a Box for one 32-byte key.
func New(key []byte) (*Box, error) { return NewRing(key) }

// NewRing returns a Box for a key ring, newest key first: the first key
// seals, every key opens. It refuses an empty ring, a key that is not 32
// bytes and a key given twice. Errors never hold a key.
func NewRing(keys ...[]byte) (*Box, error) {
	if len(keys) == 0 {
		return nil, errors.New("secretbox: the key ring is empty")
	}
	b := &Box{keys: make([]ringKey, 0, len(keys))}
	for i, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("secretbox: key %d must be %d bytes, got %d", i+1, KeySize, len(key))
		}
		for j := range i {
			if bytes.Equal(keys[j], key) {
				return nil, fmt.Errorf("secretbox: key %d repeats key %d", i+1, j+1)
			}
		}
		id := keyID(key)
		for j, k := range b.keys {
			if k.id == id {
				return nil, fmt.Errorf("secretbox: keys %d and %d have the same key id; replace one", j+1, i+1)
			}
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		b.keys = append(b.keys, ringKey{id: id, aead: aead})
	}
	b.newest = append([]byte(nil), keys[0]...)
	return b, nil
}

func keyID(key []byte) (id [KeyIDSize]byte) {
	sum := sha256.Sum256(key)
	copy(id[:], sum[:KeyIDSize])
	return id
}

// KeyID returns the id of the newest key (the one Seal uses), in hex: the
// first 8 hex digits of the key's SHA-256. It is not secret.
func (b *Box) KeyID() string { return hex.EncodeToString(b.keys[0].id[:]) }

// KeyIDs returns the ids of every key of the ring, newest first.
func (b *Box) KeyIDs() []string {
	out := make([]string, len(b.keys))
	for i, k := range b.keys {
		out[i] = hex.EncodeToString(k.id[:])
	}
	return out
}

// DeriveKey returns a 32-byte key for one purpose ("landing-code/v1"),
// derived from the newest key of the ring with HKDF-SHA256: every replica
// configured with the same newest key derives the same key, and no derived
// key reveals the box's keys or another purpose's key. A derived key
// changes when the newest key changes (a rotation).
func (b *Box) DeriveKey(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, b.newest, nil, "crowdgate/"+purpose, KeySize)
	if err != nil { // only for lengths HKDF cannot produce
		panic("secretbox: " + err.Error())
	}
	return k
}

// ParseKey decodes a base64 (standard or URL, padded or not) 32-byte key,
// as given in CROWDGATE_ENCRYPTION_KEY. The error never contains the key.
func ParseKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("encryption key must decode to %d bytes, got %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("encryption key is not base64 (generate one with: openssl rand -base64 32)")
}

// ParseKeyRing decodes a key ring as given in CROWDGATE_ENCRYPTION_KEY:
// comma-separated keys (each as ParseKey reads it, spaces around them
// ignored), newest first. It refuses an empty entry, a malformed key and a
// key given twice; the error names the entry by position and never
// contains a key.
func ParseKeyRing(s string) ([][]byte, error) {
	parts := strings.Split(s, ",")
	keys := make([][]byte, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		var (
			k   []byte
			err error
		)
		switch {
		case p == "" && len(parts) == 1:
			return nil, errors.New("encryption key is empty")
		case p == "":
			err = errors.New("is empty (the ring is comma-separated base64 keys, newest first)")
		default:
			k, err = ParseKey(p)
		}
		if err == nil {
			for j, prev := range keys {
				if bytes.Equal(prev, k) {
					err = fmt.Errorf("repeats key %d (list each key once)", j+1)
					break
				}
			}
		}
		if err != nil && len(parts) == 1 {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("key %d of %d: %w", i+1, len(parts), err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// NewRandomKey returns a fresh random key.
func NewRandomKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("secretbox: crypto/rand failed: " + err.Error())
	}
	return k
}

// Seal encrypts plaintext bound to context under the newest key; the
// result is version || key id || nonce || ciphertext.
func (b *Box) Seal(plaintext []byte, context string) []byte {
	k := b.keys[0]
	n := k.aead.NonceSize()
	out := make([]byte, headerSize+n, headerSize+n+len(plaintext)+k.aead.Overhead())
	out[0] = version1
	copy(out[1:headerSize], k.id[:])
	if _, err := rand.Read(out[headerSize:]); err != nil {
		panic("secretbox: crypto/rand failed: " + err.Error())
	}
	return k.aead.Seal(out, out[headerSize:], plaintext, additionalData(out[:headerSize], context))
}

// additionalData authenticates the header with the context.
func additionalData(header []byte, context string) []byte {
	return append(append(make([]byte, 0, len(header)+len(context)), header...), context...)
}

// ErrOpen reports a sealed value that does not open: sealed under a key
// that is not in the ring, bound to another context, or tampered with.
var ErrOpen = errors.New("secretbox: sealed value does not open with this key ring and context")

// Open decrypts what Seal returned for the same context, under any key of
// the ring, in the current format or the one before key rings.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	pt, _, err := b.open(sealed, context)
	return pt, err
}

// Reseal returns sealed sealed again under the newest key. When sealed is
// already in the current format under the newest key it is returned as is
// (changed is false). It fails with ErrOpen when no key of the ring opens
// it.
func (b *Box) Reseal(sealed []byte, context string) (resealed []byte, changed bool, err error) {
	pt, current, err := b.open(sealed, context)
	if err != nil {
		return nil, false, err
	}
	if current {
		return sealed, false, nil
	}
	return b.Seal(pt, context), true, nil
}

// open decrypts sealed; current reports that it is in the current format
// under the newest key.
func (b *Box) open(sealed []byte, context string) (pt []byte, current bool, err error) {
	var unknown string
	if len(sealed) >= headerSize && sealed[0] == version1 {
		found := false
		for i, k := range b.keys {
			if !bytes.Equal(k.id[:], sealed[1:headerSize]) {
				continue
			}
			found = true
			n := k.aead.NonceSize()
			if len(sealed) < headerSize+n+k.aead.Overhead() {
				break
			}
			body := sealed[headerSize:]
			if pt, err := k.aead.Open(nil, body[:n], body[n:], additionalData(sealed[:headerSize], context)); err == nil {
				return pt, i == 0, nil
			}
			break
		}
		if !found {
			unknown = hex.EncodeToString(sealed[1:headerSize])
		}
	}
	// The format before key rings: nonce || ciphertext. (A value of the
	// current format never opens this way: its first bytes are no nonce.)
	for _, k := range b.keys {
		n := k.aead.NonceSize()
		if len(sealed) < n+k.aead.Overhead() {
			break
		}
		if pt, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(context)); err == nil {
			return pt, false, nil
		}
	}
	if unknown != "" {
		return nil, false, fmt.Errorf("%w (its header names key id %s, which is not in the ring)", ErrOpen, unknown)
	}
	return nil, false, ErrOpen
}

// ResealCounts say what re-sealing a store's secrets under the newest key
// did: how many were rewritten, how many were already under it, and how
// many no key of the ring opens (left as they are).
type ResealCounts struct {
	// Resealed were rewritten under the newest key.
	Resealed int
	// Current were already sealed under it.
	Current int
	// Unreadable open with no key of the ring; they were left as they are.
	Unreadable int
}

// Package secretbox encrypts secrets at rest (Toloka API keys, signing keys)
// with AES-256-GCM. Each sealed value carries its own random nonce and is
// bound to a context string (for example the credential id), so a sealed
// value copied onto another record does not open.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the size of a key in bytes (AES-256).
const KeySize = 32

// Box seals and opens secrets with one key.
type Box struct {
	aead cipher.AEAD
	key  []byte
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secretbox: key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead, key: append([]byte(nil), key...)}, nil
}

// DeriveKey returns a 32-byte key for one purpose ("landing-code/v1"),
// derived from the box's key with HKDF-SHA256: every replica configured
// with the same encryption key derives the same key, and no derived key
// reveals the box's key or another purpose's key.
func (b *Box) DeriveKey(purpose string) []byte {
	k, err := hkdf.Key(sha256.New, b.key, nil, "crowdgate/"+purpose, KeySize)
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

// NewRandomKey returns a fresh random key.
func NewRandomKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("secretbox: crypto/rand failed: " + err.Error())
	}
	return k
}

// Seal encrypts plaintext bound to context; the result is nonce||ciphertext.
func (b *Box) Seal(plaintext []byte, context string) []byte {
	nonce := make([]byte, b.aead.NonceSize(), b.aead.NonceSize()+len(plaintext)+b.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic("secretbox: crypto/rand failed: " + err.Error())
	}
	return b.aead.Seal(nonce, nonce, plaintext, []byte(context))
}

// ErrOpen reports a sealed value that does not open: another key, another
// context, or tampered bytes.
var ErrOpen = errors.New("secretbox: sealed value does not open with this key and context")

// Open decrypts what Seal returned for the same context.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[:n], sealed[n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

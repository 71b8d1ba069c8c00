package secretbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	box, err := New(NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("toloka-api-key-123")
	sealed := box.Seal(secret, "cred_1")
	if bytes.Contains(sealed, secret) {
		t.Fatal("sealed value contains the plaintext")
	}
	if got, err := box.Open(sealed, "cred_1"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if bytes.Equal(box.Seal(secret, "cred_1"), sealed) {
		t.Error("two seals of the same value are equal: nonce reused")
	}

	other, _ := New(NewRandomKey())
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other context": func() ([]byte, error) { return box.Open(sealed, "cred_2") },
		"other key":     func() ([]byte, error) { return other.Open(sealed, "cred_1") },
		"tampered":      func() ([]byte, error) { return box.Open(tampered, "cred_1") },
		"truncated":     func() ([]byte, error) { return box.Open(sealed[:5], "cred_1") },
	} {
		if _, err := open(); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	key := NewRandomKey()
	for _, s := range []string{base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key)} {
		got, err := ParseKey(s)
		if err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseKey(%q) = %v, %v", s, got, err)
		}
	}
	short := base64.StdEncoding.EncodeToString([]byte("short-secret-value"))
	for _, s := range []string{short, "not base64 !!"} {
		_, err := ParseKey(s)
		if err == nil {
			t.Errorf("ParseKey(%q) accepted a bad key", s)
		} else if strings.Contains(err.Error(), s) {
			t.Errorf("error %q repeats the key", err)
		}
	}
}

func TestDeriveKey(t *testing.T) {
	key := NewRandomKey()
	a, _ := New(key)
	b, _ := New(append([]byte(nil), key...))
	other, _ := New(NewRandomKey())
	k := a.DeriveKey("landing-code/v1")
	if len(k) != KeySize {
		t.Fatalf("derived key has %d bytes, want %d", len(k), KeySize)
	}
	if !bytes.Equal(k, b.DeriveKey("landing-code/v1")) {
		t.Error("two boxes with the same key derive different keys for one purpose")
	}
	if bytes.Equal(k, a.DeriveKey("other/v1")) {
		t.Error("two purposes derive the same key")
	}
	if bytes.Equal(k, other.DeriveKey("landing-code/v1")) {
		t.Error("two box keys derive the same key")
	}
	if bytes.Equal(k, key) {
		t.Error("the derived key is the box's key")
	}
}

// legacySeal seals the way secretbox did before key rings: nonce||ciphertext,
// no header, the context as additional data.
func legacySeal(t *testing.T, key, plaintext []byte, context string) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	return aead.Seal(nonce, nonce, plaintext, []byte(context))
}

func mustRing(t *testing.T, keys ...[]byte) *Box {
	t.Helper()
	b, err := NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func keyIDOf(key []byte) []byte {
	sum := sha256.Sum256(key)
	return sum[:4]
}

// Values sealed before key rings existed (nonce||ciphertext, no header)
// still open, under whichever key of the ring sealed them.
func TestOldFormatValuesOpen(t *testing.T) {
	k1, k2 := NewRandomKey(), NewRandomKey()
	secret := []byte("toloka-api-key-old")
	old := legacySeal(t, k1, secret, "cred_1")
	for name, box := range map[string]*Box{"the same key": mustRing(t, k1), "a ring with a newer key first": mustRing(t, k2, k1)} {
		if got, err := box.Open(old, "cred_1"); err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s: Open = %q, %v", name, got, err)
		}
		if _, err := box.Open(old, "cred_2"); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: an old value opened under another context: %v", name, err)
		}
	}
}

// A ring opens what any of its keys sealed; it seals with the newest key
// only, under a header that names that key.
func TestRingSealsWithTheNewestKeyAndOpensWithAny(t *testing.T) {
	k1, k2 := NewRandomKey(), NewRandomKey()
	secret := []byte("toloka-api-key-123")
	underK1 := mustRing(t, k1).Seal(secret, "cred_1")
	ring := mustRing(t, k2, k1)
	if got, err := ring.Open(underK1, "cred_1"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("the ring [K2, K1] opens a value sealed under K1: %q, %v", got, err)
	}

	now := ring.Seal(secret, "cred_1")
	if now[0] != 1 || !bytes.Equal(now[1:5], keyIDOf(k2)) {
		t.Errorf("a new value starts % x, want version 1 and K2's key id % x", now[:5], keyIDOf(k2))
	}
	if ring.KeyID() != hex.EncodeToString(keyIDOf(k2)) {
		t.Errorf("KeyID = %s, want K2's %x", ring.KeyID(), keyIDOf(k2))
	}
	if got, err := mustRing(t, k2).Open(now, "cred_1"); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("K2 alone opens the ring's new value: %q, %v", got, err)
	}
	if _, err := mustRing(t, k1).Open(now, "cred_1"); !errors.Is(err, ErrOpen) {
		t.Errorf("K1 alone opened a value sealed under K2: %v", err)
	}
	// The header is authenticated: naming another key of the ring does not
	// make the value open under it.
	forged := append([]byte(nil), now...)
	copy(forged[1:5], keyIDOf(k1))
	if _, err := ring.Open(forged, "cred_1"); !errors.Is(err, ErrOpen) {
		t.Errorf("a value with a rewritten header opened: %v", err)
	}
}

// A ring that no longer holds the old key refuses what only it sealed, in
// either format, and says nothing of the keys.
func TestRingWithoutTheOldKeyRefusesOldValues(t *testing.T) {
	k1, k2 := NewRandomKey(), NewRandomKey()
	secret := []byte("toloka-api-key-123")
	onlyK2 := mustRing(t, k2)
	for name, sealed := range map[string][]byte{
		"current format": mustRing(t, k1).Seal(secret, "cred_1"),
		"old format":     legacySeal(t, k1, secret, "cred_1"),
	} {
		_, err := onlyK2.Open(sealed, "cred_1")
		if !errors.Is(err, ErrOpen) {
			t.Errorf("%s: err = %v, want ErrOpen", name, err)
			continue
		}
		for _, k := range [][]byte{k1, k2} {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
				if strings.Contains(err.Error(), enc.EncodeToString(k)) || strings.Contains(err.Error(), hex.EncodeToString(k)) {
					t.Errorf("%s: the error holds a key", name)
				}
			}
		}
	}
}

// Reseal rewrites what is not yet under the newest key, and leaves alone
// what is.
func TestReseal(t *testing.T) {
	k1, k2 := NewRandomKey(), NewRandomKey()
	secret := []byte("toloka-api-key-123")
	ring, onlyK2 := mustRing(t, k2, k1), mustRing(t, k2)
	for name, sealed := range map[string][]byte{
		"old format under K1":     legacySeal(t, k1, secret, "cred_1"),
		"current format under K1": mustRing(t, k1).Seal(secret, "cred_1"),
		"old format under K2":     legacySeal(t, k2, secret, "cred_1"),
	} {
		resealed, changed, err := ring.Reseal(sealed, "cred_1")
		if err != nil || !changed {
			t.Errorf("%s: Reseal = changed %v, %v; want a new value", name, changed, err)
			continue
		}
		if got, err := onlyK2.Open(resealed, "cred_1"); err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s: K2 alone does not open the resealed value: %v", name, err)
		}
		again, changed, err := ring.Reseal(resealed, "cred_1")
		if err != nil || changed || !bytes.Equal(again, resealed) {
			t.Errorf("%s: a second Reseal = changed %v, %v; want the value unchanged", name, changed, err)
		}
	}
	if _, _, err := onlyK2.Reseal(legacySeal(t, k1, secret, "cred_1"), "cred_1"); !errors.Is(err, ErrOpen) {
		t.Errorf("Reseal of a value no key of the ring opens = %v, want ErrOpen", err)
	}
}

// Derived keys come from the newest key of the ring.
func TestDeriveKeyUsesTheNewestKey(t *testing.T) {
	k1, k2 := NewRandomKey(), NewRandomKey()
	if !bytes.Equal(mustRing(t, k2, k1).DeriveKey("landing-code/v1"), mustRing(t, k2).DeriveKey("landing-code/v1")) {
		t.Error("the ring [K2, K1] derives another key than K2")
	}
	if bytes.Equal(mustRing(t, k2, k1).DeriveKey("landing-code/v1"), mustRing(t, k1).DeriveKey("landing-code/v1")) {
		t.Error("the ring [K2, K1] derives K1's key")
	}
}

func TestNewRingRefusesBadRings(t *testing.T) {
	k := NewRandomKey()
	for name, keys := range map[string][][]byte{
		"no key":    nil,
		"duplicate": {k, NewRandomKey(), append([]byte(nil), k...)},
		"short key": {k, k[:16]},
	} {
		if _, err := NewRing(keys...); err == nil {
			t.Errorf("%s: NewRing accepted it", name)
		}
	}
}

// CROWDGATE_ENCRYPTION_KEY is a ring: comma-separated keys, newest first.
// A duplicate or malformed key is refused naming the setting, never
// repeating a key.
func TestSettingsParseTheKeyRing(t *testing.T) {
	k1, k2 := NewRandomKey(), NewRandomKey()
	b64 := base64.StdEncoding.EncodeToString
	secret := []byte("s")
	underK1 := mustRing(t, k1).Seal(secret, "c")

	for _, ring := range []string{b64(k2) + "," + b64(k1), " " + b64(k2) + " , " + base64.RawURLEncoding.EncodeToString(k1) + " "} {
		s := Settings{Key: ring}
		box, ephemeral, err := s.Box()
		if err != nil || ephemeral {
			t.Fatalf("Box(%d keys) = %v, ephemeral %v", 2, err, ephemeral)
		}
		if _, err := box.Open(underK1, "c"); err != nil {
			t.Errorf("the ring does not open K1's value: %v", err)
		}
		if box.KeyID() != hex.EncodeToString(keyIDOf(k2)) {
			t.Errorf("the ring seals under %s, want the first key's id %x", box.KeyID(), keyIDOf(k2))
		}
	}

	short := b64([]byte("short-secret-value"))
	for name, tc := range map[string]struct{ ring, cause string }{
		"duplicate":       {b64(k2) + "," + b64(k1) + "," + b64(k2), "repeats"},
		"same key twice":  {b64(k1) + "," + base64.RawURLEncoding.EncodeToString(k1), "repeats"},
		"not base64":      {b64(k2) + ",not base64 !!", "not base64"},
		"short":           {b64(k2) + "," + short, "32 bytes"},
		"empty entry":     {b64(k2) + ",," + b64(k1), "empty"},
		"trailing comma":  {b64(k2) + ",", "empty"},
		"only whitespace": {"  ", "empty"},
	} {
		s := Settings{Key: tc.ring}
		_, _, err := s.Box()
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "CROWDGATE_ENCRYPTION_KEY: ") || !strings.Contains(msg, tc.cause) {
			t.Errorf("%s: error %q does not name CROWDGATE_ENCRYPTION_KEY and %q", name, msg, tc.cause)
		}
		for _, k := range [][]byte{k1, k2} {
			if strings.Contains(msg, b64(k)) || strings.Contains(msg, base64.RawURLEncoding.EncodeToString(k)) {
				t.Errorf("%s: error %q repeats a key", name, msg)
			}
		}
		if strings.Contains(msg, short) || strings.Contains(msg, "not base64 !!") {
			t.Errorf("%s: error %q repeats the malformed entry", name, msg)
		}
	}

	var usage string
	for _, st := range new(Settings).List() {
		usage += st.Usage
	}
	for _, want := range []string{"comma-separated", "newest first"} {
		if !strings.Contains(usage, want) {
			t.Errorf("the setting's usage %q does not say %q", usage, want)
		}
	}
}

package secretbox

import (
	"bytes"
	"encoding/base64"
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

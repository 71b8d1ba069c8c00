package catalog_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"log/slog"
	"testing"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// legacySeal seals as secretbox did before key rings (nonce||ciphertext).
func legacySeal(t *testing.T, key []byte, plaintext, context string) []byte {
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
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
}

// Reseal rewrites every stored API key under the newest key of the ring
// (and its fingerprint under the newest derived key), so a catalog with
// the newest key alone opens them all; it is idempotent, and it leaves a
// key that no key of the ring opens as it is, counting it.
func TestResealMovesEveryCredentialToTheNewestKey(t *testing.T) {
	_, client := emulator(t, map[string]string{"k1.a.b": "one", "k2.a.b": "two", "k3.a.b": "three"})
	r := redistest.New(t)
	log := slog.New(slog.DiscardHandler)
	k1, k2 := secretbox.NewRandomKey(), secretbox.NewRandomKey()
	open := func(box *secretbox.Box) *catalog.Catalog {
		return catalog.New(r.Client, r.Prefix, box, client, nil, log)
	}

	underK1 := open(ring(t, k1))
	for id, key := range map[string]string{"one": "k1.a.b", "two": "k2.a.b"} {
		if err := underK1.CreateCredential(ctx, sandboxCredential(id), key); err != nil {
			t.Fatal(err)
		}
	}
	// A credential stored before key rings: the old format and the old,
	// unkeyed fingerprint.
	if err := underK1.CreateCredential(ctx, sandboxCredential("three"), "k3.a.b"); err != nil {
		t.Fatal(err)
	}
	if err := r.Client.Set(ctx, r.Prefix+"credential-secret:default:{three}", legacySeal(t, k1, "k3.a.b", "crowdgate/credential/default/three"), 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Another tenant's credential, and one sealed under a key this ring
	// does not hold.
	globex := sandboxCredential("one")
	globex.TenantId = "globex"
	if err := underK1.CreateCredential(ctx, globex, "k1.a.b"); err != nil {
		t.Fatal(err)
	}
	lost := open(ring(t, secretbox.NewRandomKey()))
	if err := lost.CreateCredential(ctx, sandboxCredential("lost"), "k1.a.b"); err != nil {
		t.Fatal(err)
	}

	onlyK2 := open(ring(t, k2))
	var fp *serviceerror.FailedPrecondition
	if _, err := onlyK2.Account(ctx, "default", "one"); !errors.As(err, &fp) {
		t.Fatalf("before the reseal K2 alone opened a K1 credential: %v", err)
	}

	rotating := open(ring(t, k2, k1))
	counts, err := rotating.Reseal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (secretbox.ResealCounts{Resealed: 4, Unreadable: 1}); counts != want {
		t.Errorf("Reseal = %+v, want %+v", counts, want)
	}
	if counts, err := rotating.Reseal(ctx); err != nil || counts != (secretbox.ResealCounts{Current: 4, Unreadable: 1}) {
		t.Errorf("second Reseal = %+v, %v; want everything current", counts, err)
	}

	onlyK2 = open(ring(t, k2))
	for _, c := range []struct{ tenant, id, key string }{
		{"default", "one", "k1.a.b"}, {"default", "two", "k2.a.b"}, {"default", "three", "k3.a.b"}, {"globex", "one", "k1.a.b"},
	} {
		acct, err := onlyK2.Account(ctx, c.tenant, c.id)
		if err != nil {
			t.Errorf("%s/%s: K2 alone does not open it after the reseal: %v", c.tenant, c.id, err)
			continue
		}
		if _, err := acct.ListProjects(ctx, toloka.ListOptions{Limit: 1}); err != nil {
			t.Errorf("%s/%s: the opened account does not authenticate: %v", c.tenant, c.id, err)
		}
		cred, _ := onlyK2.Credential(ctx, c.tenant, c.id)
		if cred.GetKeyFingerprint() != onlyK2.Fingerprint(c.key) {
			t.Errorf("%s/%s: fingerprint %q was not recomputed under the newest key (want %q)", c.tenant, c.id, cred.GetKeyFingerprint(), onlyK2.Fingerprint(c.key))
		}
	}
	if _, err := onlyK2.Account(ctx, "default", "lost"); !errors.As(err, &fp) {
		t.Errorf("the credential no key opened = %v, want it still unreadable", err)
	}
}

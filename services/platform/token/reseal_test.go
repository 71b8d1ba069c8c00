package token_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/token"
)

func keyRing(t *testing.T, keys ...[]byte) *secretbox.Box {
	t.Helper()
	b, err := secretbox.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Reseal rewrites the signing keys under the newest encryption key, so a
// replica with the newest key alone signs with the same key as before (no
// new key, nobody logged out); it is idempotent, and a key that no key of
// the ring opens is counted and left alone (it stays published).
func TestResealMovesSigningKeysToTheNewestKey(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	k1, k2 := secretbox.NewRandomKey(), secretbox.NewRandomKey()

	old := f.signerWith(keyRing(t, k1))
	raw, _, err := old.Sign(ctx, claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	signing := kidOf(t, raw)
	next, err := old.Rotate(ctx) // published, signs later
	if err != nil {
		t.Fatal(err)
	}
	// A replica with an encryption key of its own made a key nobody else
	// can open.
	stranger := f.signerWith(keyRing(t, secretbox.NewRandomKey()))
	strangerRaw, _, err := stranger.Sign(ctx, claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	strangers := kidOf(t, strangerRaw)

	rotating := f.signerWith(keyRing(t, k2, k1))
	counts, err := rotating.Reseal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (secretbox.ResealCounts{Resealed: 2, Unreadable: 1}); counts != want {
		t.Errorf("Reseal = %+v, want %+v", counts, want)
	}
	if counts, err := rotating.Reseal(ctx); err != nil || counts != (secretbox.ResealCounts{Current: 2, Unreadable: 1}) {
		t.Errorf("second Reseal = %+v, %v; want both keys current", counts, err)
	}

	onlyK2 := f.signerWith(keyRing(t, k2))
	raw2, _, err := onlyK2.Sign(ctx, claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	if got := kidOf(t, raw2); got != signing {
		t.Fatalf("with K2 alone the signer signs with %s, want the resealed key %s", got, signing)
	}
	kids := jwksKids(t, onlyK2)
	slices.Sort(kids)
	want := []string{signing, next, strangers}
	slices.Sort(want)
	if !slices.Equal(kids, want) {
		t.Errorf("published kids %v, want %v (no key made, none dropped)", kids, want)
	}
	// The token verifies against the published key.
	set, err := onlyK2.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keyFunc := func(tok *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == tok.Header["kid"] {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, jwt.ErrTokenUnverifiable
	}
	if _, err := jwt.ParseWithClaims(raw2, &token.Claims{}, keyFunc, jwt.WithValidMethods([]string{token.Algorithm}), jwt.WithTimeFunc(f.clock.Now)); err != nil {
		t.Errorf("the token signed with K2 alone does not verify: %v", err)
	}
}

package token_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

const (
	issuer   = "https://crowdgate.example"
	audience = "https://platform.example"
)

// clock is a fake clock tests move by hand.
type clock = fakeclock.Clock

func newClock() *clock { return fakeclock.New(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)) }

type fixture struct {
	t     *testing.T
	r     *redistest.Redis
	box   *secretbox.Box
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	box, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, r: redistest.New(t), box: box, clock: newClock()}
}

// signer returns a Signer sharing the fixture's Redis, box and clock, as
// another replica would.
func (f *fixture) signer() *token.Signer {
	f.t.Helper()
	return f.signerWith(f.box)
}

func (f *fixture) signerWith(box *secretbox.Box) *token.Signer {
	f.t.Helper()
	s, err := token.NewSigner(token.Config{
		Redis: f.r.Client, Prefix: f.r.Prefix + "token:", Box: box, Issuer: issuer,
		Now: f.clock.Now, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func claims(sub string) token.Claims {
	return token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{Subject: sub, Audience: jwt.ClaimStrings{audience}},
		TenantID:         "default", ProjectID: "prj_1", PoolID: "pool_1", TolokaPoolID: "7",
		AssignmentID: "0000000007--000000000000000000000001", SessionID: "ses_1",
	}
}

// verifierFor verifies against the JWK Set signer serves over HTTP, as a
// platform does.
func (f *fixture) verifierFor(s *token.Signer) *token.Verifier {
	f.t.Helper()
	srv := httptest.NewServer(s.JWKSHandler())
	f.t.Cleanup(srv.Close)
	return &token.Verifier{
		Keys:   &token.RemoteKeySet{URL: srv.URL, Client: srv.Client(), Now: f.clock.Now},
		Issuer: issuer, Tenant: "default", Audience: audience, Now: f.clock.Now,
	}
}

func kidOf(t *testing.T, raw string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &token.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

func jwksKids(t *testing.T, s *token.Signer) []string {
	t.Helper()
	set, err := s.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestSignedTokenVerifiesWithTheServedJWKS(t *testing.T) {
	f := newFixture(t)
	s := f.signer()
	ctx := context.Background()
	raw, exp, err := s.Sign(ctx, claims("user-1"))
	if err != nil {
		t.Fatal(err)
	}
	if want := f.clock.Now().Add(token.DefaultTokenTTL); !exp.Equal(want) {
		t.Errorf("expiry %v, want %v", exp, want)
	}
	got, err := f.verifierFor(s).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := claims("user-1")
	want.Issuer = issuer
	// Sign pins the token to its tenant: the tenant's audience comes first.
	want.Audience = jwt.ClaimStrings{token.TenantAudience("default"), audience}
	now := jwt.NewNumericDate(f.clock.Now())
	want.IssuedAt, want.NotBefore, want.ExpiresAt = now, now, jwt.NewNumericDate(exp)
	want.ID = got.ID
	if diff := cmp.Diff(&want, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if len(got.ID) < 20 {
		t.Errorf("jti %q is too short to be unique", got.ID)
	}

	// The header names the key; alg is EdDSA.
	tok, _, _ := jwt.NewParser().ParseUnverified(raw, &token.Claims{})
	if tok.Header["alg"] != "EdDSA" || tok.Header["kid"] == "" {
		t.Errorf("header %v, want alg EdDSA and a kid", tok.Header)
	}
}

func TestJWKSIsRFC8037(t *testing.T) {
	f := newFixture(t)
	s := f.signer()
	raw, _, err := s.Sign(context.Background(), claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.JWKSHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.HasPrefix(cc, "public, max-age=") {
		t.Errorf("Cache-Control %q", cc)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("keys %v, want one", set.Keys)
	}
	k := set.Keys[0]
	x, err := base64.RawURLEncoding.DecodeString(k["x"])
	if err != nil || len(x) != ed25519.PublicKeySize {
		t.Fatalf("x %q is not a base64url Ed25519 key", k["x"])
	}
	want := map[string]string{"kty": "OKP", "crv": "Ed25519", "x": k["x"], "kid": kidOf(t, raw), "alg": "EdDSA", "use": "sig"}
	if diff := cmp.Diff(want, k); diff != "" {
		t.Errorf("JWK (-want +got):\n%s", diff)
	}
	if k["kid"] != token.Thumbprint(x) {
		t.Errorf("kid %q is not the RFC 7638 thumbprint %q", k["kid"], token.Thumbprint(x))
	}
	if strings.Contains(string(body), `"d"`) {
		t.Errorf("the JWK Set carries private key material: %s", body)
	}
}

// forge builds a token by hand: header and claims as given, signed by sign.
func forge(t *testing.T, header map[string]any, c any, sign func(string) []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(header) + "." + enc(c)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sign(signing))
}

func TestVerifierRefuses(t *testing.T) {
	f := newFixture(t)
	s := f.signer()
	ctx := context.Background()
	good, _, err := s.Sign(ctx, claims("user-1"))
	if err != nil {
		t.Fatal(err)
	}
	kid := kidOf(t, good)
	parts := strings.Split(good, ".")

	// A key the JWK Set does not hold.
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	pub := strangerKey.Public().(ed25519.PublicKey)
	now := f.clock.Now()
	valid := func() token.Claims {
		c := claims("user-1")
		c.Issuer = issuer
		c.IssuedAt = jwt.NewNumericDate(now)
		c.ExpiresAt = jwt.NewNumericDate(now.Add(time.Minute))
		return c
	}
	edSign := func(key ed25519.PrivateKey) func(string) []byte {
		return func(s string) []byte { return ed25519.Sign(key, []byte(s)) }
	}

	// Re-sign good's claims with changes, with the real key, to check
	// claim validation independent of the signature.
	otherSigner := func(mutate func(*token.Claims)) string {
		c := claims("user-1")
		mutate(&c)
		raw, _, err := s.Sign(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	var payload map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	_ = json.Unmarshal(b, &payload)
	payload["sub"] = "user-2"
	tamperedPayload, _ := json.Marshal(payload)

	for _, tc := range []struct {
		name string
		raw  string
		is   error // jwt error the refusal must wrap, if any
	}{
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2], jwt.ErrTokenSignatureInvalid},
		{"tampered signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 64)), jwt.ErrTokenSignatureInvalid},
		{"expired", func() string {
			raw, _, _ := s.Sign(ctx, claims("user-1"))
			return raw
		}(), jwt.ErrTokenExpired}, // verified after the clock moves (below)
		{"wrong audience", otherSigner(func(c *token.Claims) { c.Audience = jwt.ClaimStrings{"https://evil.example"} }), jwt.ErrTokenInvalidAudience},
		{"unknown kid", forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": token.Thumbprint(pub)}, valid(), edSign(strangerKey)), token.ErrUnknownKey},
		{"known kid, stranger's key", forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": kid}, valid(), edSign(strangerKey)), jwt.ErrTokenSignatureInvalid},
		{"no kid", forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT"}, valid(), edSign(strangerKey)), nil},
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}, valid(), func(string) []byte { return nil }), jwt.ErrTokenSignatureInvalid},
		{"alg HS256 keyed with the public key", forge(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, valid(), func(string) []byte { return []byte("x") }), jwt.ErrTokenSignatureInvalid},
		{"not a JWT", "hello", jwt.ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := f.verifierFor(s)
			if tc.name == "expired" {
				later := *v
				later.Now = func() time.Time {
					return f.clock.Now().Add(token.DefaultTokenTTL + token.DefaultVerifyLeeway + time.Second)
				}
				v = &later
			}
			got, err := v.Verify(ctx, tc.raw)
			if err == nil {
				t.Fatalf("Verify accepted it: %+v", got)
			}
			if !errors.Is(err, token.ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want one wrapping %v", err, tc.is)
			}
		})
	}

	// Wrong issuer: a verifier expecting another Crowdgate refuses.
	v := f.verifierFor(s)
	v.Issuer = "https://other-crowdgate.example"
	if _, err := v.Verify(ctx, good); !errors.Is(err, jwt.ErrTokenInvalidIssuer) {
		t.Errorf("wrong issuer: %v", err)
	}
	// And the untouched token passes, so the refusals above are about their changes.
	if _, err := f.verifierFor(s).Verify(ctx, good); err != nil {
		t.Errorf("the good token: %v", err)
	}
}

func TestRotationLogsNobodyOut(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := f.signer(), f.signer() // two replicas
	before, _, err := a.Sign(ctx, claims("user-1"))
	if err != nil {
		t.Fatal(err)
	}
	oldKid := kidOf(t, before)
	if raw, _, _ := b.Sign(ctx, claims("user-2")); kidOf(t, raw) != oldKid {
		t.Fatalf("replicas sign with different keys")
	}

	newKid, err := a.Rotate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Published at once, on every replica after its refresh, before it signs.
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{newKid, oldKid}, jwksKids(t, b)); diff != "" {
		t.Errorf("JWKS right after rotation (-want +got):\n%s", diff)
	}
	if raw, _, _ := b.Sign(ctx, claims("u")); kidOf(t, raw) != oldKid {
		t.Errorf("the new key signs before its publish delay")
	}

	f.clock.Advance(token.DefaultPublishDelay)
	after, _, err := b.Sign(ctx, claims("user-3"))
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, after) != newKid {
		t.Errorf("after the publish delay tokens are signed by %s, want the new key %s", kidOf(t, after), newKid)
	}
	// The token signed before the rotation still verifies (it has not
	// expired: the publish delay is shorter than the token lifetime).
	for _, raw := range []string{before, after} {
		if _, err := f.verifierFor(b).Verify(ctx, raw); err != nil {
			t.Errorf("token signed by %s: %v", kidOf(t, raw), err)
		}
	}

	// Once every token of the old key has expired, it leaves the set.
	f.clock.Advance(token.DefaultTokenTTL + token.DefaultLeeway)
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{newKid}, jwksKids(t, a)); diff != "" {
		t.Errorf("JWKS after the old key's tokens expired (-want +got):\n%s", diff)
	}
}

func TestScheduledRotationHappensOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	a, b := f.signer(), f.signer()
	raw, _, err := a.Sign(ctx, claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	first := kidOf(t, raw)
	for _, s := range []*token.Signer{a, b} {
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := jwksKids(t, a); len(got) != 1 {
		t.Fatalf("rotated before it was due: %v", got)
	}
	f.clock.Advance(token.DefaultRotationPeriod - token.DefaultPublishDelay)
	for _, s := range []*token.Signer{a, b, a} {
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	kids := jwksKids(t, b)
	if len(kids) != 2 || kids[1] != first {
		t.Fatalf("JWKS %v, want one new key then %s", kids, first)
	}
	f.clock.Advance(token.DefaultPublishDelay)
	if raw, _, _ := b.Sign(ctx, claims("u")); kidOf(t, raw) != kids[0] {
		t.Errorf("the scheduled key does not sign once active")
	}
}

func TestPrivateKeysAreSealedAtRest(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.signer()
	raw, _, err := s.Sign(ctx, claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := f.r.Client.HGetAll(ctx, f.r.Prefix+"token:keys").Result()
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored keys %v, %v", stored, err)
	}
	var rec struct {
		Public []byte `json:"pub"`
		Sealed []byte `json:"sealed"`
	}
	if err := json.Unmarshal([]byte(stored[kidOf(t, raw)]), &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Sealed) <= ed25519.SeedSize {
		t.Fatalf("sealed private key is %d bytes: not sealed", len(rec.Sealed))
	}

	// A replica with another encryption key cannot sign with it: it makes
	// its own key, and both stay published so neither's tokens break.
	otherBox, _ := secretbox.New(secretbox.NewRandomKey())
	other := f.signerWith(otherBox)
	raw2, _, err := other.Sign(ctx, claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	if kidOf(t, raw2) == kidOf(t, raw) {
		t.Fatal("a replica signed with a key it cannot have opened")
	}
	for _, r := range []string{raw, raw2} {
		if _, err := f.verifierFor(s).Verify(ctx, r); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
}

func TestRemoteKeySetFetchesAgainForANewKid(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s := f.signer()
	var fetches int
	var mu sync.Mutex
	h := s.JWKSHandler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		fetches++
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	keys := &token.RemoteKeySet{URL: srv.URL, Client: srv.Client(), Now: f.clock.Now}
	v := &token.Verifier{Keys: keys, Issuer: issuer, Tenant: "default", Audience: audience, Now: f.clock.Now}

	first, _, _ := s.Sign(ctx, claims("u"))
	for range 3 {
		if _, err := v.Verify(ctx, first); err != nil {
			t.Fatal(err)
		}
	}
	if fetches != 1 {
		t.Errorf("fetched the set %d times for one key, want 1", fetches)
	}
	if _, err := s.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(token.DefaultPublishDelay)
	second, _, _ := s.Sign(ctx, claims("u"))
	if _, err := v.Verify(ctx, second); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if fetches != 2 {
		t.Errorf("fetches %d, want 2 (once more for the new kid)", fetches)
	}
}

func TestVerifierLeeway(t *testing.T) {
	f := newFixture(t)
	s := f.signer()
	raw, _, err := s.Sign(context.Background(), claims("u"))
	if err != nil {
		t.Fatal(err)
	}
	v := f.verifierFor(s)
	// A platform whose clock is 10 s ahead of Crowdgate's, at expiry.
	v.Now = func() time.Time { return f.clock.Now().Add(token.DefaultTokenTTL + 10*time.Second) }
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Errorf("within the default leeway: %v", err)
	}
	v.Leeway = -1
	if _, err := v.Verify(context.Background(), raw); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("without leeway: %v, want expired", err)
	}
	// A platform whose clock is 10 s behind: iat and nbf are in its future.
	v.Leeway = 0
	v.Now = func() time.Time { return f.clock.Now().Add(-10 * time.Second) }
	if _, err := v.Verify(context.Background(), raw); err != nil {
		t.Errorf("clock behind, within the default leeway: %v", err)
	}
}

package token

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrInvalidToken is wrapped by every error Verify returns for a token it
// refuses (bad signature, unknown kid, wrong algorithm, issuer or audience,
// expired, malformed).
var ErrInvalidToken = errors.New("token: invalid token")

// ErrUnknownKey reports a kid that is not in the key set.
var ErrUnknownKey = errors.New("token: unknown key id")

// KeySet finds the public key of a kid.
type KeySet interface {
	// Key returns the key named kid, or an error wrapping ErrUnknownKey.
	Key(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// StaticKeySet is a fixed set of keys by kid.
type StaticKeySet map[string]ed25519.PublicKey

// Key implements KeySet.
func (s StaticKeySet) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	if k, ok := s[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}

// ParseJWKS reads a JWK Set and returns its Ed25519 signing keys by kid.
// Keys of other types or uses are skipped; a malformed Ed25519 key is an
// error.
func ParseJWKS(b []byte) (StaticKeySet, error) {
	var set JWKS
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("token: JWK Set: %w", err)
	}
	out := StaticKeySet{}
	for _, k := range set.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" || (k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != Algorithm) {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("token: JWK Set: key %q has a malformed x", k.Kid)
		}
		if k.Kid == "" {
			return nil, errors.New("token: JWK Set: a key has no kid")
		}
		out[k.Kid] = ed25519.PublicKey(x)
	}
	return out, nil
}

// RemoteKeySet is the JWK Set at a URL (Crowdgate's /.well-known/jwks.json),
// fetched on first use and again when a token names a kid it does not hold
// (at most once per MinRefresh), which is how a platform picks up a rotated
// key. It is safe for concurrent use.
type RemoteKeySet struct {
	// URL is the JWK Set's address.
	URL string
	// Client fetches it (http.DefaultClient when nil).
	Client *http.Client
	// MinRefresh is the least time between two fetches (10s when zero).
	MinRefresh time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time

	mu        sync.Mutex
	keys      StaticKeySet
	fetchedAt time.Time
}

// NewRemoteKeySet returns the key set served at url.
func NewRemoteKeySet(url string, client *http.Client) *RemoteKeySet {
	return &RemoteKeySet{URL: url, Client: client}
}

// Key implements KeySet.
func (r *RemoteKeySet) Key(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	minRefresh := r.MinRefresh
	if minRefresh <= 0 {
		minRefresh = 10 * time.Second
	}
	if r.keys != nil && now().Sub(r.fetchedAt) < minRefresh {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	keys, err := r.fetch(ctx)
	if err != nil {
		return nil, err
	}
	r.keys, r.fetchedAt = keys, now()
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
}

func (r *RemoteKeySet) fetch(ctx context.Context) (StaticKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("token: fetch JWK Set: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("token: fetch JWK Set: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("token: fetch JWK Set: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("token: fetch JWK Set: HTTP %d", resp.StatusCode)
	}
	return ParseJWKS(b)
}

// DefaultVerifyLeeway is the clock skew a Verifier allows unless told
// otherwise.
const DefaultVerifyLeeway = 30 * time.Second

// TenantAudienceScheme starts the audience every token carries for its
// tenant: TenantAudience(tenant). A project's platform_audience may not
// start with it, so no tenant can claim another's.
const TenantAudienceScheme = "urn:crowdgate:tenant:"

// TenantAudience is the audience that pins a token to its tenant. Every
// token Crowdgate signs carries it (beside the platform's own audience), and
// a Verifier for the tenant requires it.
func TenantAudience(tenantID string) string { return TenantAudienceScheme + tenantID }

// Verifier checks tokens the way a platform must: signed with EdDSA (no
// other algorithm, never "none") by a key of Keys named in the kid header,
// issued by Issuer for Tenant (its TenantAudience in aud and its id in
// tenant_id), for Audience and Project when they are set, not expired (exp
// is required), not used before iat/nbf, with a subject.
//
// Pinning the tenant is what stops a token of another tenant from being
// replayed: a tenant chooses its projects' platform URL, and so the
// platform audience, freely; only the tenant audience is Crowdgate's to
// give.
type Verifier struct {
	// Keys finds the verification key (a RemoteKeySet for Crowdgate's URL).
	Keys KeySet
	// Issuer is Crowdgate's public URL, the required iss.
	Issuer string
	// Tenant is the platform's Crowdgate tenant id: required.
	Tenant string
	// Project, when set, is the one project whose tokens are accepted.
	Project string
	// Audience, when set, is the platform's own audience (its project's
	// platform_audience, by default the origin of its platform_url), also
	// required in aud.
	Audience string
	// Leeway allows for clock skew between Crowdgate and the platform in
	// exp, nbf and iat (DefaultVerifyLeeway when zero; negative for none).
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Verify checks raw and returns its claims. Every refusal wraps
// ErrInvalidToken (and the jwt package's error, for errors.Is with
// jwt.ErrTokenExpired and the like).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	if v.Keys == nil || v.Issuer == "" || v.Tenant == "" {
		return nil, errors.New("token: Verifier needs Keys, Issuer and Tenant")
	}
	leeway := v.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultVerifyLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{Algorithm}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(TenantAudience(v.Tenant)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
	}
	if v.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.Now))
	}
	claims := &Claims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("the token has no kid")
		}
		return v.Keys.Key(ctx, kid)
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	switch {
	case claims.Subject == "":
		return nil, fmt.Errorf("%w: no subject", ErrInvalidToken)
	case claims.TenantID != v.Tenant:
		return nil, fmt.Errorf("%w: %w: issued for another tenant", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
	case v.Project != "" && claims.ProjectID != v.Project:
		return nil, fmt.Errorf("%w: %w: issued for another project", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
	case v.Audience != "" && !slices.Contains(claims.Audience, v.Audience):
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
	}
	return claims, nil
}

// Package token signs the tokens that tell a partner platform who a Toloker
// is, and publishes the keys that verify them.
//
// Tokens are JWTs (golang-jwt v5) signed with EdDSA over Ed25519. Every token
// names its key in the "kid" header; the public keys are served as an RFC
// 8037 JWK Set (kty OKP, crv Ed25519) at /.well-known/jwks.json.
//
// Signing keys live in Redis, one hash field per key, so that every replica
// signs with the same keys. The private half is sealed with the gateway's
// secretbox (bound to the key id); the public half is stored in the clear so
// the JWK Set can always be served. After the encryption key is rotated,
// Reseal rewrites the sealed halves under the newest key (crowdgate
// -reseal), so the old key can leave the ring without losing a key.
//
// Rotation logs nobody out. A new key is published in the JWK Set
// PublishDelay before it starts signing, so every replica and every platform
// cache has it before the first token it signs exists; from its activation
// on it signs, and the key it replaces stays published for TokenTTL (plus
// Leeway) more, until every token the old key signed has expired. Rotation
// happens every RotationPeriod (any one replica does it, under a Redis lock)
// or on demand with Rotate.
//
// Verifier is the other side: the checks a platform makes on a token
// (EdDSA only, known kid, issuer, audience, expiry), usable by platforms
// written in Go and by Crowdgate's own tests.
package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// JWKSPath is where the JWK Set is served.
const JWKSPath = "/.well-known/jwks.json"

// Algorithm is the only JWS algorithm Crowdgate signs with and accepts.
const Algorithm = "EdDSA"

// Defaults for Config's zero fields.
const (
	DefaultTokenTTL        = 15 * time.Minute
	DefaultRotationPeriod  = 7 * 24 * time.Hour
	DefaultPublishDelay    = 10 * time.Minute
	DefaultRefreshInterval = 30 * time.Second
	DefaultLeeway          = time.Minute
)

// Claims are the claims of a Crowdgate token. The registered claims carry
// the Toloker (sub: Toloka's user_id), the issuer (iss: Crowdgate's public
// URL), the platform (aud), iat, nbf, exp and a unique jti; the others name
// the Toloker's assignment, pool, project and session.
type Claims struct {
	jwt.RegisteredClaims
	// TenantID is the requester organisation that owns the project.
	TenantID string `json:"tenant_id,omitempty"`
	// ProjectID is Crowdgate's project id.
	ProjectID string `json:"project_id,omitempty"`
	// PoolID is Crowdgate's pool id.
	PoolID string `json:"pool_id,omitempty"`
	// TolokaPoolID is Toloka's pool id (what tasks/external/submit takes).
	TolokaPoolID string `json:"toloka_pool_id,omitempty"`
	// AssignmentID is Toloka's assignment id.
	AssignmentID string `json:"assignment_id,omitempty"`
	// SessionID is Crowdgate's session id (the platform gives it to Submit).
	SessionID string `json:"sid,omitempty"`
}

// Config configures a Signer.
type Config struct {
	// Redis holds the keys, shared by every replica.
	Redis redis.UniversalClient
	// Prefix starts the signer's keys ("crowdgate:token:").
	Prefix string
	// Box seals private keys at rest.
	Box *secretbox.Box
	// Issuer is the iss of every token: Crowdgate's public URL.
	Issuer string
	// TokenTTL is a token's lifetime (DefaultTokenTTL when zero).
	TokenTTL time.Duration
	// RotationPeriod is how long a key signs before the next one takes
	// over (DefaultRotationPeriod when zero).
	RotationPeriod time.Duration
	// PublishDelay is how long a new key is published before it signs
	// (DefaultPublishDelay when zero). Keep it well above RefreshInterval
	// and the JWK Set's max-age.
	PublishDelay time.Duration
	// RefreshInterval is how often Run reloads the keys from Redis
	// (DefaultRefreshInterval when zero).
	RefreshInterval time.Duration
	// Leeway is the clock skew allowed between replicas and platforms
	// (DefaultLeeway when zero); retired keys stay published this much
	// longer.
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives key rotation events (never key material).
	Log *slog.Logger
}

// Signer signs tokens with the current key and serves the JWK Set. It is
// safe for concurrent use.
type Signer struct {
	cfg     Config
	keysKey string
	lockKey string
	state   atomic.Pointer[keyState]
	loadMu  sync.Mutex // serialises loads and key creation in this process
}

// keyState is an immutable snapshot of the keys as last loaded.
type keyState struct {
	keys     []*signingKey // by activation, oldest first
	loadedAt time.Time
}

// signingKey is one key. private is nil when this replica cannot open it.
type signingKey struct {
	kid      string
	public   ed25519.PublicKey
	private  ed25519.PrivateKey
	created  time.Time
	activate time.Time
}

// keyRecord is a key as stored in Redis (JSON, private half sealed).
type keyRecord struct {
	Kid      string    `json:"kid"`
	Public   []byte    `json:"pub"`
	Sealed   []byte    `json:"sealed"`
	Created  time.Time `json:"created"`
	Activate time.Time `json:"activate"`
}

// NewSigner returns a Signer. It reads nothing yet: keys are loaded (and the
// first one created) on first use, and refreshed by Run.
func NewSigner(cfg Config) (*Signer, error) {
	if cfg.Redis == nil {
		return nil, errors.New("token: Config.Redis is nil")
	}
	if cfg.Box == nil {
		return nil, errors.New("token: Config.Box is nil")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("token: Config.Issuer is empty")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.TokenTTL, DefaultTokenTTL)
	def(&cfg.RotationPeriod, DefaultRotationPeriod)
	def(&cfg.PublishDelay, DefaultPublishDelay)
	def(&cfg.RefreshInterval, DefaultRefreshInterval)
	def(&cfg.Leeway, DefaultLeeway)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Signer{cfg: cfg, keysKey: cfg.Prefix + "keys", lockKey: cfg.Prefix + "rotate-lock"}, nil
}

// Issuer returns the iss of the signer's tokens.
func (s *Signer) Issuer() string { return s.cfg.Issuer }

// TokenTTL returns the lifetime of the signer's tokens.
func (s *Signer) TokenTTL() time.Duration { return s.cfg.TokenTTL }

// Sign signs c with the current key. It sets iss, iat, nbf, jti and exp
// (TokenTTL from now, or c's ExpiresAt if that is earlier) and returns the
// token and its expiry. c must carry sub and aud.
func (s *Signer) Sign(ctx context.Context, c Claims) (string, time.Time, error) {
	if c.Subject == "" || c.TenantID == "" {
		return "", time.Time{}, errors.New("token: claims need a subject and a tenant")
	}
	// Every token is pinned to its tenant: its tenant audience first, and
	// no other tenant's, whatever the caller put in aud (see Verifier).
	aud := jwt.ClaimStrings{TenantAudience(c.TenantID)}
	for _, a := range c.Audience {
		if a != "" && !strings.HasPrefix(a, TenantAudienceScheme) {
			aud = append(aud, a)
		}
	}
	c.Audience = aud
	now := s.cfg.Now()
	key, err := s.signingKey(ctx, now)
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(s.cfg.TokenTTL)
	if c.ExpiresAt != nil && c.ExpiresAt.Before(exp) {
		exp = c.ExpiresAt.Time
	}
	jti := make([]byte, 16)
	_, _ = rand.Read(jti)
	c.Issuer = s.cfg.Issuer
	c.IssuedAt = jwt.NewNumericDate(now)
	c.NotBefore = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(exp)
	c.ID = base64.RawURLEncoding.EncodeToString(jti)
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = key.kid
	signed, err := t.SignedString(key.private)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	return signed, c.ExpiresAt.Time, nil
}

// signingKey returns the newest active key this replica can open, loading
// (and on first use creating) keys as needed.
func (s *Signer) signingKey(ctx context.Context, now time.Time) (*signingKey, error) {
	if st := s.state.Load(); st != nil {
		if k := st.current(now); k != nil {
			if now.Sub(st.loadedAt) <= 2*s.cfg.RefreshInterval {
				return k, nil
			}
			// Run is not refreshing (or failing): reload here, and sign
			// with the cached key if Redis does not answer.
			s.loadMu.Lock()
			fresh, err := s.loadLocked(ctx, now)
			s.loadMu.Unlock()
			if err != nil {
				return k, nil
			}
			if k := fresh.current(now); k != nil {
				return k, nil
			}
		}
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	st, err := s.loadLocked(ctx, now)
	if err != nil {
		return nil, err
	}
	if k := st.current(now); k != nil {
		return k, nil
	}
	// No key this replica can sign with: the first start, or keys sealed
	// under another encryption key. Make one that signs at once; on the
	// first start only one replica does (the others wait for its key).
	if len(st.keys) == 0 {
		var locked bool
		if st, locked, err = s.awaitFirstKeyLocked(ctx, now); err != nil {
			return nil, err
		}
		if locked {
			defer s.cfg.Redis.Del(context.WithoutCancel(ctx), s.lockKey)
		}
		if k := st.current(now); k != nil {
			return k, nil
		}
	}
	if _, err := s.createLocked(ctx, now, now); err != nil {
		return nil, err
	}
	if st, err = s.loadLocked(ctx, now); err != nil {
		return nil, err
	}
	if k := st.current(now); k != nil {
		return k, nil
	}
	return nil, &serviceerror.Unavailable{Message: "no token signing key is available"}
}

// awaitFirstKeyLocked takes the rotation lock to create the first key, or,
// when another replica holds it, waits (a little) for that replica's key.
// It returns the keys then loaded (an empty set means "create one now")
// and whether it holds the lock (the caller releases it).
func (s *Signer) awaitFirstKeyLocked(ctx context.Context, now time.Time) (*keyState, bool, error) {
	ok, err := s.cfg.Redis.SetNX(ctx, s.lockKey, "first", 5*time.Second).Result()
	if err != nil {
		return nil, false, storage.Unavailable(err)
	}
	if ok {
		return &keyState{loadedAt: now}, true, nil
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return nil, false, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		st, err := s.loadLocked(ctx, now)
		if err != nil || len(st.keys) > 0 {
			return st, false, err
		}
	}
	return &keyState{loadedAt: now}, false, nil
}

// current returns the newest key active at now that has its private half.
func (st *keyState) current(now time.Time) *signingKey {
	for i := len(st.keys) - 1; i >= 0; i-- {
		k := st.keys[i]
		if k.private != nil && !k.activate.After(now) {
			return k
		}
	}
	return nil
}

// published returns the keys that belong in the JWK Set at now: all but
// those replaced longer than TokenTTL+Leeway ago. It also returns the
// retired ones.
func (s *Signer) published(keys []*signingKey, now time.Time) (live, retired []*signingKey) {
	for i, k := range keys {
		isRetired := false
		for _, newer := range keys[i+1:] {
			if !newer.activate.Add(s.cfg.TokenTTL + s.cfg.Leeway).After(now) {
				isRetired = true
				break
			}
		}
		if isRetired {
			retired = append(retired, k)
		} else {
			live = append(live, k)
		}
	}
	return live, retired
}

// Refresh reloads the keys from Redis, removes retired ones, and creates
// the next key when rotation is due (under a lock, so one replica does it).
func (s *Signer) Refresh(ctx context.Context) error {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	now := s.cfg.Now()
	st, err := s.loadLocked(ctx, now)
	if err != nil {
		return err
	}
	if len(st.keys) == 0 {
		return nil // the first Sign creates the first key
	}
	newest := st.keys[len(st.keys)-1]
	if newest.activate.Add(s.cfg.RotationPeriod - s.cfg.PublishDelay).After(now) {
		return nil
	}
	ok, err := s.cfg.Redis.SetNX(ctx, s.lockKey, strconv.FormatInt(now.UnixNano(), 10), time.Minute).Result()
	if err != nil {
		return storage.Unavailable(err)
	}
	if !ok {
		return nil // another replica is rotating
	}
	defer s.cfg.Redis.Del(context.WithoutCancel(ctx), s.lockKey)
	if st, err = s.loadLocked(ctx, now); err != nil { // it may have rotated just before
		return err
	}
	if newest = st.keys[len(st.keys)-1]; newest.activate.Add(s.cfg.RotationPeriod - s.cfg.PublishDelay).After(now) {
		return nil
	}
	kid, err := s.createLocked(ctx, now, now.Add(s.cfg.PublishDelay))
	if err != nil {
		return err
	}
	s.cfg.Log.Info("token signing key rotated", "kid", kid, "signs_from", now.Add(s.cfg.PublishDelay), "reason", "scheduled")
	_, err = s.loadLocked(ctx, now)
	return err
}

// Rotate creates a new key now: it is published at once and signs from
// PublishDelay on. Tokens signed by the keys it replaces keep verifying
// until they expire.
func (s *Signer) Rotate(ctx context.Context) (kid string, err error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	now := s.cfg.Now()
	if kid, err = s.createLocked(ctx, now, now.Add(s.cfg.PublishDelay)); err != nil {
		return "", err
	}
	s.cfg.Log.Info("token signing key rotated", "kid", kid, "signs_from", now.Add(s.cfg.PublishDelay), "reason", "requested")
	_, err = s.loadLocked(ctx, now)
	return kid, err
}

// Run refreshes the keys every RefreshInterval until ctx is done. The
// gateway runs it as a background worker.
func (s *Signer) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.RefreshInterval)
	defer t.Stop()
	for {
		if err := s.Refresh(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("token signing keys: refresh failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// createLocked stores a new key that signs from activate.
func (s *Signer) createLocked(ctx context.Context, now, activate time.Time) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("token: generate key: %w", err)
	}
	kid := Thumbprint(pub)
	rec := keyRecord{
		Kid:      kid,
		Public:   pub,
		Sealed:   s.cfg.Box.Seal(priv.Seed(), sealContext(kid)),
		Created:  now.UTC(),
		Activate: activate.UTC(),
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	if err := s.cfg.Redis.HSet(ctx, s.keysKey, kid, b).Err(); err != nil {
		return "", storage.Unavailable(err)
	}
	return kid, nil
}

func sealContext(kid string) string { return "crowdgate-token-signing-key:" + kid }

// loadLocked reads every key from Redis, drops retired ones, and stores the
// snapshot.
func (s *Signer) loadLocked(ctx context.Context, now time.Time) (*keyState, error) {
	raw, err := s.cfg.Redis.HGetAll(ctx, s.keysKey).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	keys := make([]*signingKey, 0, len(raw))
	for field, v := range raw {
		var rec keyRecord
		if err := json.Unmarshal([]byte(v), &rec); err != nil || len(rec.Public) != ed25519.PublicKeySize || rec.Kid != field {
			s.cfg.Log.Warn("token signing keys: ignoring an unreadable key record", "kid", field)
			continue
		}
		k := &signingKey{kid: rec.Kid, public: ed25519.PublicKey(rec.Public), created: rec.Created, activate: rec.Activate}
		if seed, err := s.cfg.Box.Open(rec.Sealed, sealContext(rec.Kid)); err == nil && len(seed) == ed25519.SeedSize {
			if priv := ed25519.NewKeyFromSeed(seed); priv.Public().(ed25519.PublicKey).Equal(k.public) {
				k.private = priv
			}
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b *signingKey) int {
		if c := a.activate.Compare(b.activate); c != 0 {
			return c
		}
		return a.created.Compare(b.created)
	})
	live, retired := s.published(keys, now)
	if len(retired) > 0 {
		fields := make([]string, len(retired))
		for i, k := range retired {
			fields[i] = k.kid
		}
		if err := s.cfg.Redis.HDel(ctx, s.keysKey, fields...).Err(); err != nil {
			return nil, storage.Unavailable(err)
		}
		s.cfg.Log.Info("token signing keys retired", "kids", fields)
	}
	st := &keyState{keys: live, loadedAt: now}
	s.state.Store(st)
	return st, nil
}

// JWK is one public key in RFC 8037 form.
type JWK struct {
	// Kty is "OKP".
	Kty string `json:"kty"`
	// Crv is "Ed25519".
	Crv string `json:"crv"`
	// X is the public key, base64url without padding.
	X string `json:"x"`
	// Kid is the key id: the key's RFC 7638 thumbprint.
	Kid string `json:"kid"`
	// Alg is "EdDSA".
	Alg string `json:"alg,omitempty"`
	// Use is "sig".
	Use string `json:"use,omitempty"`
}

// JWKS is a JWK Set.
type JWKS struct {
	// Keys are the published keys.
	Keys []JWK `json:"keys"`
}

// PublicJWK returns the JWK of an Ed25519 public key.
func PublicJWK(pub ed25519.PublicKey) JWK {
	return JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: Thumbprint(pub), Alg: Algorithm, Use: "sig"}
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key (its
// SHA-256 over the canonical JWK members crv, kty, x), base64url: the kid.
func Thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKS returns the published keys: every key that signs, will sign, or
// signed tokens that may not have expired yet.
func (s *Signer) JWKS(ctx context.Context) (JWKS, error) {
	// Always read Redis: a key another replica just made is published by
	// every replica at once (the set is small and platforms cache it).
	now := s.cfg.Now()
	s.loadMu.Lock()
	st, err := s.loadLocked(ctx, now)
	s.loadMu.Unlock()
	if err != nil {
		return JWKS{}, err
	}
	if len(st.keys) == 0 || st.current(now) == nil {
		// Nothing published yet: make the first key, so a platform that
		// fetches the set before the first landing caches a useful one.
		if _, err := s.signingKey(ctx, now); err != nil {
			return JWKS{}, err
		}
		st = s.state.Load()
	}
	live, _ := s.published(st.keys, now)
	set := JWKS{Keys: make([]JWK, 0, len(live))}
	for i := len(live) - 1; i >= 0; i-- { // newest first
		set.Keys = append(set.Keys, PublicJWK(live[i].public))
	}
	return set, nil
}

// JWKSHandler serves the JWK Set (GET /.well-known/jwks.json). Caches may
// keep it for a fraction of PublishDelay, so they always hold a key before
// it signs.
func (s *Signer) JWKSHandler() http.Handler {
	maxAge := int((s.cfg.PublishDelay / 4).Seconds())
	cacheControl := "public, max-age=" + strconv.Itoa(maxAge)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		set, err := s.JWKS(r.Context())
		if err != nil {
			s.cfg.Log.Warn("JWKS unavailable", "err", err)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "signing keys are temporarily unavailable", http.StatusServiceUnavailable)
			return
		}
		b, _ := json.Marshal(set)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", cacheControl)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(b)
	})
}

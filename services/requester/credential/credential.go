// Package credential keeps requesters' Toloka API keys: checked with Toloka
// at registration, encrypted at rest, never returned or logged.
//
// A credential is two Redis records in its tenant's key space: the metadata
// (crowdgatev1.Credential, through protostore) and the key sealed with
// secretbox, bound to the tenant and credential id so a sealed key copied
// onto another record does not open. A third record, the set of projects
// that use the credential, lets Delete refuse atomically while an unarchived
// project depends on it. The three keys share a Redis Cluster hash slot.
package credential

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/protostore"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// MaxDisplayNameLength bounds a credential's display name, in characters.
const MaxDisplayNameLength = 200

// FingerprintLength is how many hex digits of the key's SHA-256 make its
// fingerprint.
const FingerprintLength = 16

// DefaultCacheTTL is how long Account keeps an opened credential in memory.
const DefaultCacheTTL = time.Minute

// Config is what the service is built from.
type Config struct {
	// Redis stores credentials; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string
	// Box seals API keys at rest.
	Box *secretbox.Box
	// Toloka checks keys at registration and makes the accounts.
	Toloka *toloka.Client
	// Log receives the service's logs (never a key).
	Log *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// CacheTTL bounds how long Account reuses an opened credential
	// (DefaultCacheTTL when zero, no cache when negative).
	CacheTTL time.Duration
}

// Service implements crowdgatev1.CredentialServiceServer.
type Service struct {
	crowdgatev1.UnimplementedCredentialServiceServer
	cfg   Config
	store *protostore.Store[*crowdgatev1.Credential]

	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct{ tenantID, credentialID string }

type cacheEntry struct {
	account *toloka.Account
	expires time.Time
}

// NewService returns the credential service.
func NewService(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	return &Service{
		cfg:   cfg,
		store: protostore.New(cfg.Redis, cfg.Prefix, "credential", func() *crowdgatev1.Credential { return new(crowdgatev1.Credential) }),
		cache: map[cacheKey]cacheEntry{},
	}
}

// TolokaEnvironment maps an API environment to the client's.
func TolokaEnvironment(e crowdgatev1.Environment) (toloka.Environment, bool) {
	switch e {
	case crowdgatev1.Environment_ENVIRONMENT_SANDBOX:
		return toloka.Sandbox, true
	case crowdgatev1.Environment_ENVIRONMENT_PRODUCTION:
		return toloka.Production, true
	}
	return "", false
}

// Fingerprint returns the non-secret fingerprint of an API key: the first
// FingerprintLength hex digits of its SHA-256.
func Fingerprint(apiKey string) string {
	sum := sha256.Sum256([]byte(apiKey))
	return hex.EncodeToString(sum[:])[:FingerprintLength]
}

// secretKey is the Redis key of a credential's sealed API key; usersKey is
// the set of projects that use it. Both share the record's hash tag.
func (s *Service) secretKey(tenantID, id string) string {
	return fmt.Sprintf("%scredential-secret:%s:{%s}", s.cfg.Prefix, tenantID, id)
}

func (s *Service) usersKey(tenantID, id string) string {
	return fmt.Sprintf("%scredential-users:%s:{%s}", s.cfg.Prefix, tenantID, id)
}

// sealContext binds a sealed key to its tenant and credential.
func sealContext(tenantID, id string) string {
	return "crowdgate/credential/" + tenantID + "/" + id
}

// CreateCredential registers a Toloka API key after Toloka accepted it.
func (s *Service) CreateCredential(ctx context.Context, req *crowdgatev1.CreateCredentialRequest) (*crowdgatev1.CreateCredentialResponse, error) {
	tenantID := tenant.FromContext(ctx)
	name := strings.TrimSpace(req.GetDisplayName())
	switch {
	case name == "":
		return nil, serviceerror.NewInvalidArgument("display_name", "is required")
	case utf8.RuneCountInString(name) > MaxDisplayNameLength:
		return nil, serviceerror.NewInvalidArgument("display_name", "must be at most %d characters", MaxDisplayNameLength)
	}
	env, ok := TolokaEnvironment(req.GetEnvironment())
	if !ok {
		return nil, serviceerror.NewInvalidArgument("environment", "must be ENVIRONMENT_SANDBOX or ENVIRONMENT_PRODUCTION")
	}
	key := strings.TrimSpace(req.GetApiKey())
	if key == "" {
		return nil, serviceerror.NewInvalidArgument("api_key", "is required")
	}
	account, err := s.cfg.Toloka.Account(toloka.Credential{Environment: env, Token: key})
	if err != nil {
		// The client's reasons (empty, whitespace inside) never hold the key.
		return nil, serviceerror.NewInvalidArgument("api_key", "is not a usable Toloka API key or OAuth token")
	}
	// The cheapest authenticated call: one project, if any.
	if _, err := account.ListProjects(ctx, toloka.ListOptions{Limit: 1}); err != nil {
		return nil, verifyError(err)
	}

	now := s.cfg.Now()
	id := protostore.NewID("cred")
	c := &crowdgatev1.Credential{
		CredentialId:   id,
		TenantId:       tenantID,
		DisplayName:    name,
		Environment:    req.GetEnvironment(),
		KeyFingerprint: Fingerprint(key),
		CreateTime:     timestamppb.New(now),
		VerifyTime:     timestamppb.New(now),
	}
	sealed := s.cfg.Box.Seal([]byte(key), sealContext(tenantID, id))
	if err := s.cfg.Redis.Set(ctx, s.secretKey(tenantID, id), sealed, 0).Err(); err != nil {
		return nil, unavailable(err)
	}
	if err := s.store.Create(ctx, tenantID, id, c); err != nil {
		s.cfg.Redis.Del(context.WithoutCancel(ctx), s.secretKey(tenantID, id))
		return nil, err
	}
	s.cfg.Log.InfoContext(ctx, "toloka credential registered", "tenant_id", tenantID, "credential_id", id,
		"environment", string(env), "key_fingerprint", c.KeyFingerprint)
	return &crowdgatev1.CreateCredentialResponse{Credential: c}, nil
}

// verifyError turns Toloka's refusal of a key at registration into the
// caller's error: any refusal of the key itself is FAILED_PRECONDITION;
// Toloka being unreachable or throttling stays what it is.
func verifyError(err error) error {
	var (
		fp *serviceerror.FailedPrecondition
		pd *serviceerror.PermissionDenied
		nf *serviceerror.NotFound
		un *serviceerror.Unavailable
		re *serviceerror.ResourceExhausted
	)
	switch {
	case errors.As(err, &un), errors.As(err, &re):
		return err
	case errors.As(err, &fp):
		return &serviceerror.FailedPrecondition{Message: "Toloka refused the API key: " + fp.Message}
	case errors.As(err, &pd):
		return &serviceerror.FailedPrecondition{Message: "Toloka accepted the API key but denied it access to projects: " + pd.Message}
	case errors.As(err, &nf):
		return &serviceerror.FailedPrecondition{Message: "Toloka refused the API key: the API answered not found; check the environment"}
	}
	return err
}

// GetCredential returns a credential's metadata.
func (s *Service) GetCredential(ctx context.Context, req *crowdgatev1.GetCredentialRequest) (*crowdgatev1.GetCredentialResponse, error) {
	c, err := s.Get(ctx, tenant.FromContext(ctx), req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetCredentialResponse{Credential: c}, nil
}

// Get returns a tenant's credential (metadata only).
func (s *Service) Get(ctx context.Context, tenantID, credentialID string) (*crowdgatev1.Credential, error) {
	return s.store.Get(ctx, tenantID, credentialID)
}

// ListCredentials lists the tenant's credentials, newest first.
func (s *Service) ListCredentials(ctx context.Context, req *crowdgatev1.ListCredentialsRequest) (*crowdgatev1.ListCredentialsResponse, error) {
	items, next, err := s.store.List(ctx, tenant.FromContext(ctx), "", req.GetPageSize(), req.GetPageToken(), nil)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListCredentialsResponse{Credentials: items, NextPageToken: next}, nil
}

// useScript adds a project to a credential's users if the credential exists.
var useScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`)

// deleteScript deletes a credential and its sealed key unless a project
// uses it: it answers {"missing"}, {"in_use", project ids...} or {"deleted"}.
var deleteScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local users = redis.call('SMEMBERS', KEYS[3])
if #users > 0 then
  table.insert(users, 1, 'in_use')
  return users
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {'deleted'}
`)

// DeleteCredential forgets a key, unless an unarchived project uses it.
func (s *Service) DeleteCredential(ctx context.Context, req *crowdgatev1.DeleteCredentialRequest) (*crowdgatev1.DeleteCredentialResponse, error) {
	tenantID, id := tenant.FromContext(ctx), req.GetCredentialId()
	if id == "" {
		return nil, serviceerror.NewInvalidArgument("credential_id", "is required")
	}
	res, err := deleteScript.Run(ctx, s.cfg.Redis,
		[]string{s.store.Key(tenantID, id), s.secretKey(tenantID, id), s.usersKey(tenantID, id)}).StringSlice()
	if err != nil {
		return nil, unavailable(err)
	}
	switch {
	case len(res) == 0:
		return nil, fmt.Errorf("credential: unexpected delete answer")
	case res[0] == "missing":
		return nil, &serviceerror.NotFound{Resource: "credential", ID: id}
	case res[0] == "in_use":
		users := res[1:]
		slices.Sort(users)
		return nil, serviceerror.NewFailedPrecondition("credential %q is used by unarchived project(s) %s; archive them first",
			id, strings.Join(users, ", "))
	}
	if err := s.store.Delete(ctx, tenantID, id); err != nil {
		return nil, err
	}
	s.mu.Lock()
	delete(s.cache, cacheKey{tenantID, id})
	s.mu.Unlock()
	s.cfg.Log.InfoContext(ctx, "toloka credential deleted", "tenant_id", tenantID, "credential_id", id)
	return &crowdgatev1.DeleteCredentialResponse{}, nil
}

// Use records that project projectID uses the credential, so the credential
// cannot be deleted until Release. It fails with NotFound when the
// credential does not exist (checked atomically with the record).
func (s *Service) Use(ctx context.Context, tenantID, credentialID, projectID string) error {
	if credentialID == "" {
		return &serviceerror.NotFound{Resource: "credential", ID: credentialID}
	}
	n, err := useScript.Run(ctx, s.cfg.Redis,
		[]string{s.store.Key(tenantID, credentialID), s.usersKey(tenantID, credentialID)}, projectID).Int()
	if err != nil {
		return unavailable(err)
	}
	if n == 0 {
		return &serviceerror.NotFound{Resource: "credential", ID: credentialID}
	}
	return nil
}

// Release undoes Use: the project no longer holds the credential.
func (s *Service) Release(ctx context.Context, tenantID, credentialID, projectID string) error {
	return unavailable(s.cfg.Redis.SRem(ctx, s.usersKey(tenantID, credentialID), projectID).Err())
}

// Account returns the Toloka account handle of a tenant's credential.
func (s *Service) Account(ctx context.Context, tenantID, credentialID string) (*toloka.Account, error) {
	k := cacheKey{tenantID, credentialID}
	now := s.cfg.Now()
	if s.cfg.CacheTTL > 0 {
		s.mu.Lock()
		e, ok := s.cache[k]
		s.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.account, nil
		}
	}
	c, err := s.store.Get(ctx, tenantID, credentialID)
	if err != nil {
		return nil, err
	}
	env, ok := TolokaEnvironment(c.GetEnvironment())
	if !ok {
		return nil, fmt.Errorf("credential %s has no environment", credentialID)
	}
	sealed, err := s.cfg.Redis.Get(ctx, s.secretKey(tenantID, credentialID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, &serviceerror.NotFound{Resource: "credential", ID: credentialID}
	}
	if err != nil {
		return nil, unavailable(err)
	}
	key, err := s.cfg.Box.Open(sealed, sealContext(tenantID, credentialID))
	if err != nil {
		s.cfg.Log.ErrorContext(ctx, "a stored Toloka credential does not open: was CROWDGATE_ENCRYPTION_KEY changed?",
			"tenant_id", tenantID, "credential_id", credentialID)
		return nil, serviceerror.NewFailedPrecondition("credential %q cannot be decrypted with this replica's encryption key; register the API key again", credentialID)
	}
	account, err := s.cfg.Toloka.Account(toloka.Credential{Environment: env, Token: string(key)})
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", credentialID, err)
	}
	if s.cfg.CacheTTL > 0 {
		s.mu.Lock()
		s.cache[k] = cacheEntry{account: account, expires: now.Add(s.cfg.CacheTTL)}
		s.mu.Unlock()
	}
	return account, nil
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &serviceerror.Unavailable{Message: "datastore unavailable: " + err.Error()}
}

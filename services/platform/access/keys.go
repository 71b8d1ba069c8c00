package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// API keys.
//
// A key's bearer secret is "<api_key_id>_<secret>", for example
// "cgk_0123456789abcdefghjkmnpqrs_<52 base32 characters>": the id (which is
// also the key's visible prefix) finds the key's record in one Redis
// lookup, and the secret (32 bytes from crypto/rand) is compared with the
// stored SHA-256 in constant time. A SHA-256 suffices for a 256-bit random
// secret: nothing can be guessed, so nothing needs slowing down.
//
// Each key is one Redis hash, "<prefix>access:apikey:{<id>}":
//
//	meta     the ApiKey proto (immutable fields only)
//	tenant   the tenant it acts for
//	scope    the ApiKeyScope number
//	hash     SHA-256 of the secret
//	revoked  Unix milliseconds of the revocation (absent while valid)
//	used     Unix milliseconds of the last use (written at most once per
//	         LastUsedResolution)
//
// Revocation and last use are separate fields, so writing one never undoes
// the other. Nothing is cached: every call reads the record, so a revoked
// key is refused by the very next call on every replica.

const keyIDPrefix = "cgk"

// secretEncoding has no '_' so the last '_' of a bearer secret separates id
// and secret.
var secretEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func (s *Service) keyKey(id string) string { return s.prefix + "apikey:{" + id + "}" }

func (s *Service) keyIndex(tenantID string) string { return s.prefix + "idx:apikey:" + tenantID }

// validKeyID accepts ids made by newKeyID: "cgk_" and 26 base32 characters.
func validKeyID(id string) bool {
	rest, ok := strings.CutPrefix(id, keyIDPrefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	for _, r := range rest {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// splitBearerKey splits "<id>_<secret>" into a syntactically valid id and
// the secret.
func splitBearerKey(token string) (id, secret string, ok bool) {
	i := strings.LastIndexByte(token, '_')
	if i < 0 {
		return "", "", false
	}
	id, secret = token[:i], token[i+1:]
	if !validKeyID(id) || secret == "" {
		return "", "", false
	}
	return id, secret, true
}

// keyRecord is what authentication reads of a key.
type keyRecord struct {
	tenant  string
	scope   crowdgatev1.ApiKeyScope
	hash    []byte
	revoked bool
	used    time.Time
}

// createKey stores a new key for an existing tenant and returns its
// metadata and bearer secret.
func (s *Service) createKey(ctx context.Context, tenantID, name string, scope crowdgatev1.ApiKeyScope) (*crowdgatev1.ApiKey, string, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, "", fmt.Errorf("random key: %w", err)
	}
	secret := secretEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(secret))
	key := &crowdgatev1.ApiKey{
		ApiKeyId:    storage.NewID(keyIDPrefix),
		TenantId:    tenantID,
		DisplayName: name,
		Scope:       scope,
		CreateTime:  timestamp(s.now()),
	}
	meta, err := proto.Marshal(key)
	if err != nil {
		return nil, "", fmt.Errorf("encode api key: %w", err)
	}
	err = s.rdb.HSet(ctx, s.keyKey(key.ApiKeyId), map[string]any{
		"meta":   meta,
		"tenant": tenantID,
		"scope":  int64(scope),
		"hash":   sum[:],
	}).Err()
	if err != nil {
		return nil, "", storage.Unavailable(err)
	}
	if err := s.rdb.ZAdd(ctx, s.keyIndex(tenantID), redis.Z{Member: key.ApiKeyId}).Err(); err != nil {
		return nil, "", storage.Unavailable(err)
	}
	return key, key.ApiKeyId + "_" + secret, nil
}

// lookupKey authenticates a bearer secret "<id>_<secret>". It returns the
// key's id and record, or an Unauthenticated error that does not say which
// part was wrong.
func (s *Service) lookupKey(ctx context.Context, token string) (string, *keyRecord, error) {
	id, secret, ok := splitBearerKey(token)
	if !ok {
		return "", nil, errBadCredentials
	}
	vals, err := s.rdb.HMGet(ctx, s.keyKey(id), "tenant", "scope", "hash", "revoked", "used").Result()
	if err != nil {
		return "", nil, storage.Unavailable(err)
	}
	tenantID, _ := vals[0].(string)
	scopeStr, _ := vals[1].(string)
	hash, _ := vals[2].(string)
	revoked, _ := vals[3].(string)
	used, _ := vals[4].(string)
	sum := sha256.Sum256([]byte(secret))
	if hash == "" || subtle.ConstantTimeCompare(sum[:], []byte(hash)) != 1 {
		return "", nil, errBadCredentials
	}
	if revoked != "" {
		return "", nil, &serviceerror.Unauthenticated{Message: "the API key is revoked"}
	}
	scope, err := strconv.Atoi(scopeStr)
	if err != nil || !validTenantID(tenantID) {
		// A damaged record must never act for the default tenant.
		return "", nil, fmt.Errorf("api key %s: damaged record (scope %q)", id, scopeStr)
	}
	rec := &keyRecord{tenant: tenantID, scope: crowdgatev1.ApiKeyScope(scope), hash: []byte(hash)}
	if ms, err := strconv.ParseInt(used, 10, 64); err == nil {
		rec.used = time.UnixMilli(ms)
	}
	return id, rec, nil
}

// touchKey records a key's use, at most once per LastUsedResolution. A
// failure is logged: it must not refuse a call that was authenticated.
func (s *Service) touchKey(ctx context.Context, id string, rec *keyRecord) {
	now := s.now()
	if !rec.used.IsZero() && now.Sub(rec.used) < LastUsedResolution && !now.Before(rec.used) {
		return
	}
	if err := s.rdb.HSet(ctx, s.keyKey(id), "used", now.UnixMilli()).Err(); err != nil {
		s.log.Warn("could not record an API key's last use", "api_key_id", id, "err", err)
	}
}

// getKey reads a key's metadata.
func (s *Service) getKey(ctx context.Context, id string) (*crowdgatev1.ApiKey, error) {
	if !validKeyID(id) {
		return nil, &serviceerror.NotFound{Resource: "api key", ID: id}
	}
	vals, err := s.rdb.HMGet(ctx, s.keyKey(id), "meta", "revoked", "used").Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	meta, _ := vals[0].(string)
	if meta == "" {
		return nil, &serviceerror.NotFound{Resource: "api key", ID: id}
	}
	key := new(crowdgatev1.ApiKey)
	if err := proto.Unmarshal([]byte(meta), key); err != nil {
		return nil, fmt.Errorf("decode api key %s: %w", id, err)
	}
	if ms, err := strconv.ParseInt(str(vals[1]), 10, 64); err == nil {
		key.RevokeTime = timestamp(time.UnixMilli(ms))
	}
	if ms, err := strconv.ParseInt(str(vals[2]), 10, 64); err == nil {
		key.LastUsedTime = timestamp(time.UnixMilli(ms))
	}
	return key, nil
}

// revokeKey revokes an existing key (keeping the first revocation time)
// and returns its metadata. The caller has read the key with getKey.
func (s *Service) revokeKey(ctx context.Context, id string) (*crowdgatev1.ApiKey, error) {
	// The record exists (keys are never deleted), so HSETNX only adds the
	// field.
	if err := s.rdb.HSetNX(ctx, s.keyKey(id), "revoked", s.now().UnixMilli()).Err(); err != nil {
		return nil, storage.Unavailable(err)
	}
	return s.getKey(ctx, id)
}

// listKeys pages through a tenant's keys, newest first.
func (s *Service) listKeys(ctx context.Context, tenantID string, pageSize int32, pageToken string) ([]*crowdgatev1.ApiKey, string, error) {
	page, err := paging.Parse("api-keys/"+tenantID, pageSize, pageToken)
	if err != nil {
		return nil, "", err
	}
	max := "+"
	if page.After != "" {
		max = "(" + page.After
	}
	ids, err := s.rdb.ZRevRangeByLex(ctx, s.keyIndex(tenantID), &redis.ZRangeBy{Max: max, Min: "-", Count: int64(page.Size) + 1}).Result()
	if err != nil {
		return nil, "", storage.Unavailable(err)
	}
	next := ""
	if len(ids) > page.Size {
		ids = ids[:page.Size]
		next = page.Token(ids[len(ids)-1])
	}
	out := make([]*crowdgatev1.ApiKey, 0, len(ids))
	for _, id := range ids {
		k, err := s.getKey(ctx, id)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		out = append(out, k)
	}
	return out, next, nil
}

var errBadCredentials = &serviceerror.Unauthenticated{Message: "invalid credentials"}

func str(v any) string { s, _ := v.(string); return s }

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

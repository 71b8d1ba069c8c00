package catalog

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// ErrSecretDoesNotOpen is in the error of a credential whose stored API
// key does not open with this replica's key ring (a key dropped before
// crowdgate -reseal ran, or a replica not yet given the new key): the
// replica's fault, not the caller's. Callers see FAILED_PRECONDITION; work
// queued for the credential (a submit) waits for a replica that can open
// it rather than failing for good.
var ErrSecretDoesNotOpen = errors.New("catalog: the credential's secret does not open with this replica's key ring")

// A credential is three keys that share its hash tag: the metadata, the
// sealed API key, and the set of projects that use it (so deleting it can
// be refused atomically while a project depends on it); a fourth marks it
// deleted for a while.

func (c *Catalog) secretKey(tenantID, id string) string {
	return fmt.Sprintf("%scredential-secret:%s:{%s}", c.prefix, tenantID, id)
}

func (c *Catalog) usersKey(tenantID, id string) string {
	return fmt.Sprintf("%scredential-users:%s:{%s}", c.prefix, tenantID, id)
}

// deletedKey marks a credential deleted, with the deleting call's token,
// for deletionMarkTTL: a delete sent twice answers as the first time.
func (c *Catalog) deletedKey(tenantID, id string) string {
	return fmt.Sprintf("%scredential-deleted:%s:{%s}", c.prefix, tenantID, id)
}

// deletionMarkTTL is how long a deleted credential's mark lasts: far
// longer than a client takes to send a command again.
const deletionMarkTTL = 10 * time.Minute

// sealContext binds a sealed key to its tenant and credential.
func sealContext(tenantID, id string) string {
	return "crowdgate/credential/" + tenantID + "/" + id
}

// FingerprintLength is how many hex digits make a key's fingerprint.
const FingerprintLength = 16

// fingerprintPurpose names the key fingerprints are computed under,
// derived from the encryption key (secretbox.Box.DeriveKey).
const fingerprintPurpose = "credential-fingerprint/v1"

// Fingerprint returns the non-secret fingerprint of an API key, to tell
// keys apart: the first FingerprintLength hex digits of its HMAC-SHA256
// under a key derived from the newest encryption key. Unlike a plain hash
// it cannot be checked against guessed keys without that key, so a weak
// API key cannot be found from its fingerprint offline. It is the same on
// every replica with the same newest encryption key; a rotation changes it
// (Reseal recomputes the stored ones).
func (c *Catalog) Fingerprint(apiKey string) string {
	// Derived on each call: fingerprints are computed on writes only, and
	// HKDF costs microseconds.
	mac := hmac.New(sha256.New, c.box.DeriveKey(fingerprintPurpose))
	mac.Write([]byte(apiKey))
	return hex.EncodeToString(mac.Sum(nil))[:FingerprintLength]
}

// CreateCredential seals apiKey and stores it with the credential's
// metadata; it sets the credential's key_fingerprint (Fingerprint).
func (c *Catalog) CreateCredential(ctx context.Context, cred *crowdgatev1.Credential, apiKey string) error {
	tenantID, id := cred.GetTenantId(), cred.GetCredentialId()
	cred.KeyFingerprint = c.Fingerprint(apiKey)
	sealed := c.box.Seal([]byte(apiKey), sealContext(tenantID, id))
	ok, err := storage.SetIfNew(ctx, c.rdb, c.secretKey(tenantID, id), sealed)
	if err != nil {
		return err
	}
	if !ok {
		return &serviceerror.AlreadyExists{Resource: "credential", ID: id}
	}
	if err := c.credentials.Create(ctx, tenantID, id, cred); err != nil {
		// The secret is taken back unless the record is stored after all
		// (its reply lost): a credential must not lose its secret, and a
		// secret without its record must not stay for ever.
		var ae *serviceerror.AlreadyExists
		n, xerr := c.rdb.Exists(context.WithoutCancel(ctx), c.credentials.Key(tenantID, id)).Result()
		if errors.As(err, &ae) || (xerr == nil && n == 0) {
			c.rdb.Del(context.WithoutCancel(ctx), c.secretKey(tenantID, id))
		}
		return err
	}
	return nil
}

// Credential returns a tenant's credential (metadata only).
func (c *Catalog) Credential(ctx context.Context, tenantID, credentialID string) (*crowdgatev1.Credential, error) {
	return c.credentials.Get(ctx, tenantID, credentialID)
}

// ListCredentials pages through a tenant's credentials, newest first.
func (c *Catalog) ListCredentials(ctx context.Context, tenantID string, page paging.Page) ([]*crowdgatev1.Credential, string, error) {
	return c.credentials.List(ctx, tenantID, "", page, nil)
}

var (
	//go:embed lua/credential_use.lua
	useLua string
	//go:embed lua/credential_delete.lua
	deleteLua string
	//go:embed lua/credential_replace.lua
	replaceLua string

	useScript     = redis.NewScript(useLua)
	deleteScript  = redis.NewScript(deleteLua)
	replaceScript = redis.NewScript(replaceLua)
)

// ReplaceAPIKey seals apiKey over a credential's key and stores it with the
// credential's new key_fingerprint and verify_time (verified), both in one
// step; the account this replica opened with the old key is dropped at
// once. Other replicas pick the new key up within AccountTTL. The caller
// checks the key with Toloka first. It fails with NotFound when the
// tenant has no such credential (or it is deleted meanwhile).
func (c *Catalog) ReplaceAPIKey(ctx context.Context, tenantID, id, apiKey string, verified time.Time) (*crowdgatev1.Credential, error) {
	cred, err := c.Credential(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	cred = proto.Clone(cred).(*crowdgatev1.Credential)
	cred.KeyFingerprint = c.Fingerprint(apiKey)
	cred.VerifyTime = timestamppb.New(verified)
	record, err := proto.Marshal(cred)
	if err != nil {
		return nil, fmt.Errorf("encode credential %s: %w", id, err)
	}
	sealed := c.box.Seal([]byte(apiKey), sealContext(tenantID, id))
	n, err := replaceScript.Run(ctx, c.rdb, []string{c.credentials.Key(tenantID, id), c.secretKey(tenantID, id)}, record, sealed).Int()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	if n == 0 {
		return nil, &serviceerror.NotFound{Resource: "credential", ID: id}
	}
	c.forgetAccount(tenantID, id)
	return cred, nil
}

// CredentialProjects returns the projects that use a tenant's credential
// (those UseCredential recorded and ReleaseCredential did not release),
// by project id; a project whose record is gone is left out.
func (c *Catalog) CredentialProjects(ctx context.Context, tenantID, credentialID string) ([]*crowdgatev1.Project, error) {
	ids, err := c.rdb.SMembers(ctx, c.usersKey(tenantID, credentialID)).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	slices.Sort(ids)
	out := make([]*crowdgatev1.Project, 0, len(ids))
	for _, id := range ids {
		p, err := c.Project(ctx, tenantID, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// DeleteCredential forgets a credential and its key, unless an unarchived
// project uses it (FailedPrecondition naming them).
func (c *Catalog) DeleteCredential(ctx context.Context, tenantID, id string) error {
	res, err := deleteScript.Run(ctx, c.rdb,
		[]string{c.credentials.Key(tenantID, id), c.secretKey(tenantID, id), c.usersKey(tenantID, id), c.deletedKey(tenantID, id)},
		storage.NewID("del"), deletionMarkTTL.Milliseconds()).StringSlice()
	if err != nil {
		return storage.Unavailable(err)
	}
	switch {
	case len(res) == 0:
		return errors.New("catalog: unexpected credential delete answer")
	case res[0] == "missing":
		return &serviceerror.NotFound{Resource: "credential", ID: id}
	case res[0] == "in_use":
		users := res[1:]
		slices.Sort(users)
		return serviceerror.NewFailedPrecondition("credential %q is used by unarchived project(s) %s; archive them first",
			id, strings.Join(users, ", "))
	}
	if err := c.credentials.Delete(ctx, tenantID, id); err != nil {
		return err
	}
	c.forgetAccount(tenantID, id)
	return nil
}

// UseCredential records that project projectID uses the credential, so the
// credential cannot be deleted until ReleaseCredential. It fails with
// NotFound when the credential does not exist (checked atomically).
func (c *Catalog) UseCredential(ctx context.Context, tenantID, credentialID, projectID string) error {
	if credentialID == "" {
		return &serviceerror.NotFound{Resource: "credential", ID: credentialID}
	}
	n, err := useScript.Run(ctx, c.rdb,
		[]string{c.credentials.Key(tenantID, credentialID), c.usersKey(tenantID, credentialID)}, projectID).Int()
	if err != nil {
		return storage.Unavailable(err)
	}
	if n == 0 {
		return &serviceerror.NotFound{Resource: "credential", ID: credentialID}
	}
	return nil
}

// ReleaseCredential undoes UseCredential.
func (c *Catalog) ReleaseCredential(ctx context.Context, tenantID, credentialID, projectID string) error {
	return storage.Unavailable(c.rdb.SRem(ctx, c.usersKey(tenantID, credentialID), projectID).Err())
}

// Account returns the Toloka account of a tenant's credential: its sealed
// key opened, kept in memory for AccountTTL.
func (c *Catalog) Account(ctx context.Context, tenantID, credentialID string) (*toloka.Account, error) {
	k := recordKey{tenantID, credentialID}
	now := c.now()
	c.mu.Lock()
	e, ok := c.accounts[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.account, nil
	}
	cred, err := c.Credential(ctx, tenantID, credentialID)
	if err != nil {
		return nil, err
	}
	env, ok := TolokaEnvironment(cred.GetEnvironment())
	if !ok {
		return nil, fmt.Errorf("credential %s has no environment", credentialID)
	}
	sealed, err := c.rdb.Get(ctx, c.secretKey(tenantID, credentialID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, &serviceerror.NotFound{Resource: "credential", ID: credentialID}
	}
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	key, err := c.box.Open(sealed, sealContext(tenantID, credentialID))
	if err != nil {
		c.log.ErrorContext(ctx, "a stored Toloka credential does not open with any key of CROWDGATE_ENCRYPTION_KEY: was a key dropped from the ring before crowdgate -reseal ran?",
			"tenant_id", tenantID, "credential_id", credentialID, "err", err)
		return nil, fmt.Errorf("%w: %w", ErrSecretDoesNotOpen,
			serviceerror.NewFailedPrecondition("credential %q cannot be decrypted with this replica's encryption keys; give it its API key again (ReplaceApiKey)", credentialID))
	}
	account, err := c.toloka.Account(toloka.Credential{Environment: env, Token: string(key)})
	if err != nil {
		return nil, fmt.Errorf("credential %s: %w", credentialID, err)
	}
	c.mu.Lock()
	if len(c.accounts) >= maxCached {
		clear(c.accounts)
	}
	c.accounts[k] = cachedAccount{account: account, expires: now.Add(AccountTTL)}
	c.mu.Unlock()
	return account, nil
}

func (c *Catalog) forgetAccount(tenantID, credentialID string) {
	c.mu.Lock()
	delete(c.accounts, recordKey{tenantID, credentialID})
	c.mu.Unlock()
}

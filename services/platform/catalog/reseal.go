package catalog

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Re-sealing after a rotation of the encryption key.

var (
	//go:embed lua/credential_reseal.lua
	resealLua    string
	resealScript = redis.NewScript(resealLua)
)

// resealAttempts bounds the rewrites of one credential that a concurrent
// change (a replaced key) sends back to be read again.
const resealAttempts = 5

// Reseal rewrites every stored API key, of every tenant, that is not yet
// sealed under the newest key of the catalog's box (the format before key
// rings included) and recomputes its key_fingerprint under the newest
// derived key. Each credential is rewritten in one step only if it did not
// change since it was read, so it is safe while replicas serve (every
// replica with the ring opens both forms); running it again changes
// nothing. A key that no key of the ring opens is logged (tenant and
// credential id, never key material), counted and left as it is.
//
// The catalog's Toloka client is not used: New may be given nil for it.
func (c *Catalog) Reseal(ctx context.Context) (secretbox.ResealCounts, error) {
	var counts secretbox.ResealCounts
	keys, err := storage.ScanKeys(ctx, c.rdb, storage.GlobEscape(c.prefix+"credential-secret:")+"*")
	if err != nil {
		return counts, err
	}
	for _, key := range keys {
		tenantID, id, ok := c.parseSecretKey(key)
		if !ok {
			c.log.WarnContext(ctx, "reseal: ignoring a key that is not a credential's sealed key", "key", key)
			continue
		}
		outcome, err := c.resealOne(ctx, tenantID, id)
		if err != nil {
			return counts, fmt.Errorf("credential %s of tenant %s: %w", id, tenantID, err)
		}
		switch outcome {
		case resealDone:
			counts.Resealed++
		case resealCurrent:
			counts.Current++
		case resealUnreadable:
			counts.Unreadable++
			c.log.ErrorContext(ctx, "reseal: a stored Toloka API key opens with no key of CROWDGATE_ENCRYPTION_KEY; left as it is (register the key again with ReplaceApiKey)",
				"tenant_id", tenantID, "credential_id", id)
		}
	}
	return counts, nil
}

type resealOutcome int

const (
	resealGone resealOutcome = iota
	resealDone
	resealCurrent
	resealUnreadable
)

// resealOne re-seals one credential, reading it again when it changed
// between the read and the write.
func (c *Catalog) resealOne(ctx context.Context, tenantID, id string) (resealOutcome, error) {
	recordKey, secretKey := c.credentials.Key(tenantID, id), c.secretKey(tenantID, id)
	for range resealAttempts {
		var rec, sec *redis.StringCmd
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			rec, sec = p.Get(ctx, recordKey), p.Get(ctx, secretKey)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, storage.Unavailable(err)
		}
		record, recErr := rec.Bytes()
		sealed, secErr := sec.Bytes()
		if errors.Is(recErr, redis.Nil) || errors.Is(secErr, redis.Nil) {
			// Deleted meanwhile, or a create that has not written its
			// record yet (its key is sealed under that replica's newest).
			return resealGone, nil
		}
		if err := errors.Join(recErr, secErr); err != nil {
			return 0, storage.Unavailable(err)
		}
		bound := sealContext(tenantID, id)
		apiKey, err := c.box.Open(sealed, bound)
		if err != nil {
			return resealUnreadable, nil
		}
		newSealed, changed, err := c.box.Reseal(sealed, bound)
		if err != nil {
			return resealUnreadable, nil
		}
		cred := new(crowdgatev1.Credential)
		if err := proto.Unmarshal(record, cred); err != nil {
			return 0, fmt.Errorf("decode credential: %w", err)
		}
		fingerprint := c.Fingerprint(string(apiKey))
		if !changed && cred.GetKeyFingerprint() == fingerprint {
			return resealCurrent, nil
		}
		cred.KeyFingerprint = fingerprint
		newRecord, err := proto.Marshal(cred)
		if err != nil {
			return 0, fmt.Errorf("encode credential: %w", err)
		}
		n, err := resealScript.Run(ctx, c.rdb, []string{recordKey, secretKey}, record, newRecord, sealed, newSealed).Int()
		if err != nil {
			return 0, storage.Unavailable(err)
		}
		if n == 1 {
			c.forgetAccount(tenantID, id)
			return resealDone, nil
		}
	}
	return 0, fmt.Errorf("it kept changing while it was re-sealed (%d attempts); run the reseal again", resealAttempts)
}

// parseSecretKey reads "<prefix>credential-secret:<tenant>:{<id>}".
func (c *Catalog) parseSecretKey(key string) (tenantID, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, c.prefix+"credential-secret:")
	if !ok || !strings.HasSuffix(rest, "}") {
		return "", "", false
	}
	i := strings.LastIndex(rest, ":{")
	if i <= 0 {
		return "", "", false
	}
	tenantID, id = rest[:i], rest[i+2:len(rest)-1]
	if id == "" || c.secretKey(tenantID, id) != key {
		return "", "", false
	}
	return tenantID, id, true
}

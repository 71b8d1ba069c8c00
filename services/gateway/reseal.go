package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/notify/webhook"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/token"
)

// Reseal re-seals every secret Crowdgate stores at rest under the newest
// key of CROWDGATE_ENCRYPTION_KEY, so that the older keys of the ring can
// be dropped: the Toloka API keys of every tenant's credentials (with their
// fingerprints, computed under the newest derived key), the token signing
// keys and the webhook endpoints' signing secrets. Each owner of sealed
// data does its own part (catalog, token, webhook); this composes them
// over the configured Redis. It is what
// `crowdgate -reseal` runs.
//
// It is idempotent and safe while replicas serve, provided every replica
// already has the ring (each opens values sealed under any of its keys).
// It logs what it did and fails, naming the setting, when a stored
// credential opens with no key of the ring (the ring is wrong, or the
// credential was already unreadable): dropping a key is then not safe.
// Signing keys that do not open are only counted: they stay published
// until they retire and no replica signs with them.
func Reseal(ctx context.Context, cfg Config, log *slog.Logger) error {
	if strings.TrimSpace(cfg.Secrets.Key) == "" {
		return errors.New("CROWDGATE_ENCRYPTION_KEY: -reseal needs the key ring the replicas use (the new key first, then the keys to retire)")
	}
	box, _, err := cfg.Secrets.Box()
	if err != nil {
		return err
	}
	if cfg.Redis.URL == "" {
		return errors.New("REDIS_URL: -reseal needs the deployment's Redis; an embedded one holds nothing to re-seal")
	}
	conn, err := storage.Open(ctx, cfg.Redis, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	prefix := cfg.Redis.Prefix
	log.Info("re-sealing secrets under the newest encryption key", "key_id", box.KeyID(), "ring", box.KeyIDs())

	// The catalog and the signer as wire builds them (same keys in Redis).
	credentials, err := catalog.New(conn.Client, prefix, box, nil, nil, log).Reseal(ctx)
	if err != nil {
		return fmt.Errorf("re-seal Toloka API keys: %w", err)
	}
	signer, err := token.NewSigner(token.Config{
		Redis: conn.Client, Prefix: prefix + "token:", Box: box,
		Issuer: strings.TrimRight(cfg.PublicURL, "/"), Log: log,
	})
	if err != nil {
		return fmt.Errorf("token signer: %w", err)
	}
	signing, err := signer.Reseal(ctx)
	if err != nil {
		return fmt.Errorf("re-seal token signing keys: %w", err)
	}
	evlog, err := events.New(events.Config{Redis: conn.Client, Prefix: prefix, Log: log})
	if err != nil {
		return err
	}
	hooks, err := webhook.New(webhook.Config{Redis: conn.Client, Prefix: prefix, Box: box, Events: evlog, Log: log})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	secrets, err := hooks.Reseal(ctx)
	if err != nil {
		return fmt.Errorf("re-seal webhook signing secrets: %w", err)
	}
	log.Info("secrets re-sealed under the newest encryption key", "key_id", box.KeyID(),
		"credentials_resealed", credentials.Resealed, "credentials_current", credentials.Current, "credentials_unreadable", credentials.Unreadable,
		"signing_keys_resealed", signing.Resealed, "signing_keys_current", signing.Current, "signing_keys_unreadable", signing.Unreadable,
		"webhook_secrets_resealed", secrets.Resealed, "webhook_secrets_current", secrets.Current, "webhook_secrets_unreadable", secrets.Unreadable)
	if secrets.Unreadable > 0 {
		return fmt.Errorf("CROWDGATE_ENCRYPTION_KEY: %d stored webhook signing secret(s) open with no key of the ring and were left as they are; "+
			"do not drop a key from the ring until this is understood", secrets.Unreadable)
	}
	if credentials.Unreadable > 0 {
		return fmt.Errorf("CROWDGATE_ENCRYPTION_KEY: %d stored Toloka API key(s) open with no key of the ring and were left as they are (their ids are logged); "+
			"do not drop a key from the ring until this is understood", credentials.Unreadable)
	}
	return nil
}

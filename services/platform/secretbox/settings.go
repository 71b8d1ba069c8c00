package secretbox

import (
	"fmt"

	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// Settings hold the encryption key ring of secrets at rest.
type Settings struct {
	// Key is the key ring: comma-separated base64 32-byte keys, newest
	// first; empty makes a random key at start.
	Key string
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("encryption-key", "CROWDGATE_ENCRYPTION_KEY", "",
			"key ring that encrypts Toloka API keys and signing keys at rest: comma-separated base64 32-byte keys (openssl rand -base64 32), newest first; "+
				"the newest seals and derives the landing-code and fingerprint keys, every key opens (rotation: put a new key first, run crowdgate -reseal, then drop the old key); "+
				"empty makes a random key at start",
			settings.Secret(&s.Key)),
	}
}

// Box returns the box the settings ask for. Without a key it makes a
// random one (ephemeral is then true): secrets sealed under it cannot be
// opened after a restart. Errors name the setting and never hold a key.
func (s *Settings) Box() (box *Box, ephemeral bool, err error) {
	if s.Key == "" {
		b, err := New(NewRandomKey())
		return b, true, err
	}
	keys, err := ParseKeyRing(s.Key)
	if err != nil {
		return nil, false, fmt.Errorf("CROWDGATE_ENCRYPTION_KEY: %w", err)
	}
	b, err := NewRing(keys...)
	if err != nil {
		return nil, false, fmt.Errorf("CROWDGATE_ENCRYPTION_KEY: %w", err)
	}
	return b, false, nil
}

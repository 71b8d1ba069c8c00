package secretbox

import (
	"fmt"

	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// Settings hold the encryption key of secrets at rest.
type Settings struct {
	// Key is the base64 32-byte key; empty makes a random one at start.
	Key string
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("encryption-key", "CROWDGATE_ENCRYPTION_KEY", "", "base64 32-byte key that encrypts Toloka API keys and signing keys at rest (openssl rand -base64 32); empty makes a random one at start", settings.Secret(&s.Key)),
	}
}

// Box returns the box the settings ask for. Without a key it makes a
// random one (ephemeral is then true): secrets sealed under it cannot be
// opened after a restart. Errors name the setting and never hold the key.
func (s *Settings) Box() (box *Box, ephemeral bool, err error) {
	if s.Key == "" {
		b, err := New(NewRandomKey())
		return b, true, err
	}
	key, err := ParseKey(s.Key)
	if err != nil {
		return nil, false, fmt.Errorf("CROWDGATE_ENCRYPTION_KEY: %w", err)
	}
	b, err := New(key)
	return b, false, err
}

package token

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

var (
	//go:embed lua/key_reseal.lua
	resealLua    string
	resealScript = redis.NewScript(resealLua)
)

// resealAttempts bounds the rewrites of one key that a concurrent change
// sends back to be read again.
const resealAttempts = 5

// Reseal rewrites every stored signing key whose private half is not yet
// sealed under the newest key of the signer's box (the format before key
// rings included). Each key is rewritten only if it did not change since
// it was read, so it is safe while replicas sign (every replica with the
// ring opens both forms); running it again changes nothing. Keys stay as
// they are otherwise: same kid, same activation, still published.
func (s *Signer) Reseal(ctx context.Context) (secretbox.ResealCounts, error) {
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	var counts secretbox.ResealCounts
	kids, err := s.cfg.Redis.HKeys(ctx, s.keysKey).Result()
	if err != nil {
		return counts, storage.Unavailable(err)
	}
	for _, kid := range kids {
		outcome, err := s.resealOne(ctx, kid)
		if err != nil {
			return counts, fmt.Errorf("signing key %s: %w", kid, err)
		}
		switch outcome {
		case resealDone:
			counts.Resealed++
		case resealCurrent:
			counts.Current++
		case resealUnreadable:
			counts.Unreadable++
			s.cfg.Log.Warn("reseal: a token signing key opens with no key of CROWDGATE_ENCRYPTION_KEY; left as it is (still published until it retires, never used to sign)", "kid", kid)
		}
	}
	if len(kids) > 0 {
		if _, err := s.loadLocked(ctx, s.cfg.Now()); err != nil {
			return counts, err
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

// resealOne re-seals one key, reading it again when it changed between the
// read and the write.
func (s *Signer) resealOne(ctx context.Context, kid string) (resealOutcome, error) {
	for range resealAttempts {
		raw, err := s.cfg.Redis.HGet(ctx, s.keysKey, kid).Result()
		if errors.Is(err, redis.Nil) {
			return resealGone, nil // retired meanwhile
		}
		if err != nil {
			return 0, storage.Unavailable(err)
		}
		var rec keyRecord
		if err := json.Unmarshal([]byte(raw), &rec); err != nil || rec.Kid != kid {
			return resealUnreadable, nil
		}
		sealed, changed, err := s.cfg.Box.Reseal(rec.Sealed, sealContext(kid))
		if err != nil {
			return resealUnreadable, nil
		}
		if !changed {
			return resealCurrent, nil
		}
		rec.Sealed = sealed
		b, err := json.Marshal(rec)
		if err != nil {
			return 0, err
		}
		n, err := resealScript.Run(ctx, s.cfg.Redis, []string{s.keysKey}, kid, raw, b).Int()
		if err != nil {
			return 0, storage.Unavailable(err)
		}
		if n == 1 {
			return resealDone, nil
		}
	}
	return 0, fmt.Errorf("it kept changing while it was re-sealed (%d attempts); run the reseal again", resealAttempts)
}

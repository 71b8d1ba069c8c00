// Package ratelimit is a rate limiter shared by every Crowdgate replica
// through Redis.
//
// A Limiter reserves one slot in each of several limits at once, all or
// nothing, with one Lua script. Every key of one call shares a Redis Cluster
// hash slot (the caller's key is a {hash tag}), so the script runs on
// standalone Redis, Sentinel and Cluster alike, and on miniredis in tests.
//
// Two kinds of limit exist, chosen by Limit.Burst:
//
//   - Burst == 0: a strict sliding window. At most Rate reservations fall in
//     any interval of length Per. Use it for quotas such as "20 a minute" or
//     "100 a day": a sliding window never lets through more than a calendar
//     window would, whatever the calendar is.
//   - Burst > 0: a smoothed rate (the generic cell rate algorithm, GCRA).
//     Reservations are spaced Per/Rate apart on average, and up to Burst may
//     go at once after a quiet period. It costs one small key whatever the
//     rate, which suits "300 requests a second".
//
// Wait reserves a slot. When the earliest time at which every limit has room
// is near (no more than Config.MaxWait away, and before the context's
// deadline), the slot at that time is reserved and Wait sleeps until it;
// otherwise nothing is reserved and Wait returns a
// *serviceerror.ResourceExhausted whose RetryAfter says when to try again.
package ratelimit

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// DefaultMaxWait is how long Wait sleeps at most for a slot unless
// Config.MaxWait says otherwise.
const DefaultMaxWait = time.Second

// Limit is one limit on reservations under a key.
type Limit struct {
	// Name identifies the limit under the key ("requests",
	// "create-project-minute"). It is part of the Redis key, so two limits
	// with the same name under one key are the same counter. It may not
	// contain '{', '}' or whitespace.
	Name string
	// Rate is how many reservations Per allows.
	Rate int
	// Per is the length of the window (Burst == 0) or the period Rate is
	// measured over (Burst > 0).
	Per time.Duration
	// Burst selects the algorithm. Zero means a strict sliding window (at most
	// Rate reservations in any interval of length Per). A positive value means
	// a smoothed rate of Rate per Per that allows Burst reservations at once
	// after a quiet period; in any interval of length Per at most about
	// Rate+Burst reservations then pass, so choose Rate+Burst no larger than
	// a hard limit you must respect.
	Burst int
}

func (l Limit) validate() error {
	switch {
	case l.Name == "":
		return errors.New("limit has no name")
	case strings.ContainsAny(l.Name, "{} \t\r\n"):
		return fmt.Errorf("limit name %q contains '{', '}' or whitespace", l.Name)
	case l.Rate <= 0:
		return fmt.Errorf("limit %q: rate must be positive, got %d", l.Name, l.Rate)
	case l.Per <= 0:
		return fmt.Errorf("limit %q: period must be positive, got %s", l.Name, l.Per)
	case l.Burst < 0:
		return fmt.Errorf("limit %q: burst must not be negative, got %d", l.Name, l.Burst)
	case l.Per < time.Microsecond:
		return fmt.Errorf("limit %q: period %s is shorter than the microsecond resolution", l.Name, l.Per)
	}
	return nil
}

// String describes the limit for messages, for example "20 per 1m0s".
func (l Limit) String() string {
	if l.Burst > 0 {
		return fmt.Sprintf("%s: %d per %s (burst %d)", l.Name, l.Rate, l.Per, l.Burst)
	}
	return fmt.Sprintf("%s: %d per %s", l.Name, l.Rate, l.Per)
}

// Config configures a Limiter.
type Config struct {
	// Client is the Redis shared by all replicas.
	Client redis.UniversalClient
	// Prefix starts every key, for example "crowdgate:ratelimit:". Tests use
	// redistest's per-test prefix.
	Prefix string
	// MaxWait is the longest Wait sleeps for a slot; a later slot is refused
	// with ResourceExhausted instead. Zero means DefaultMaxWait; a negative
	// value means never wait.
	MaxWait time.Duration
	// Now, when set, supplies the time the script uses. When nil the script
	// reads the Redis server's clock, which every replica shares. Tests set it
	// to a fake clock.
	Now func() time.Time
	// Sleep waits for d or until ctx is done. Nil means a real timer. Tests
	// set it to observe waits without sleeping.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Limiter reserves slots in limits kept in Redis. It is safe for concurrent
// use, and any number of Limiters (in any number of processes) that use the
// same Redis and Prefix share the same limits.
type Limiter struct {
	client  redis.UniversalClient
	prefix  string
	maxWait time.Duration
	now     func() time.Time
	sleep   func(context.Context, time.Duration) error
}

// New returns a Limiter for cfg.
func New(cfg Config) (*Limiter, error) {
	if cfg.Client == nil {
		return nil, errors.New("ratelimit: Config.Client is nil")
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("ratelimit: Config.Prefix %q contains '{' or '}', which would break the hash tag", cfg.Prefix)
	}
	l := &Limiter{client: cfg.Client, prefix: cfg.Prefix, maxWait: cfg.MaxWait, now: cfg.Now, sleep: cfg.Sleep}
	switch {
	case l.maxWait == 0:
		l.maxWait = DefaultMaxWait
	case l.maxWait < 0:
		l.maxWait = 0
	}
	if l.sleep == nil {
		l.sleep = sleepTimer
	}
	return l, nil
}

// Wait reserves one slot in every limit under key, atomically: either all
// limits take the reservation or none does.
//
// When every limit has room now, Wait returns nil at once. When the earliest
// time with room in all of them is at most MaxWait away (and before ctx's
// deadline), Wait reserves that slot, sleeps until it and returns nil; if ctx
// ends during the sleep the slot is lost and ctx's error is returned. When the
// slot is further away, nothing is reserved and Wait returns a
// *serviceerror.ResourceExhausted naming the tightest limit, with RetryAfter
// set to the time until that slot.
//
// A Redis failure is returned as an error wrapping *serviceerror.Unavailable
// and the Redis error.
//
// key identifies who is limited (an account). It is placed in a hash tag, so
// it may not contain '{' or '}'; pass a hash, never a secret.
func (l *Limiter) Wait(ctx context.Context, key string, limits ...Limit) error {
	if len(limits) == 0 {
		return nil
	}
	maxWait := l.maxWait
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < maxWait {
			maxWait = max(left, 0)
		}
	}
	r, err := l.prepare(key, maxWait, limits)
	if err != nil {
		return err
	}
	res, err := reserveScript.Run(ctx, l.client, r.Keys, r.Args...).Int64Slice()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		return fmt.Errorf("ratelimit: %w: %w", &serviceerror.Unavailable{Message: "the rate limiter's store is unavailable"}, err)
	}
	if len(res) != 3 {
		return fmt.Errorf("ratelimit: unexpected script reply %v", res)
	}
	if res[0] != 1 {
		return r.Refused(res[1], res[2])
	}
	if wait := time.Duration(res[1]) * time.Microsecond; wait > 0 {
		return l.sleep(ctx, wait)
	}
	return nil
}

// A Reservation is a reservation of one slot in every limit under a key,
// made ready for a script of another package that reserves in the same
// atomic step as its own work: the script's text starts with ReserveLua,
// it passes Keys among its own (they share the key's hash slot, which must
// be the script's) and calls crowdgate_reserve(keys, args, from) with Args
// at args[from] on. A reservation made inside a script never waits: every
// limit has room now, or crowdgate_reserve answers {0, wait, worst}, which
// Refused turns into Wait's error.
type Reservation struct {
	// Keys are the limits' keys; Args crowdgate_reserve's arguments.
	Keys []string
	Args []any

	limits []Limit
}

// Prepare returns the reservation of one slot in every limit under key, as
// Wait would make it with no time to wait. key becomes the limits' hash
// tag, so a script that also works on keys tagged {key} may reserve them.
func (l *Limiter) Prepare(key string, limits ...Limit) (*Reservation, error) {
	return l.prepare(key, 0, limits)
}

func (l *Limiter) prepare(key string, maxWait time.Duration, limits []Limit) (*Reservation, error) {
	if key == "" || strings.ContainsAny(key, "{}") {
		return nil, fmt.Errorf("ratelimit: key %q is empty or contains '{' or '}'", key)
	}
	keys := make([]string, len(limits))
	args := make([]any, 0, 3+4*len(limits))
	now := int64(-1)
	if l.now != nil {
		now = l.now().UnixMicro()
	}
	args = append(args, now, maxWait.Microseconds(), nonce())
	seen := make(map[string]bool, len(limits))
	for i, lim := range limits {
		if err := lim.validate(); err != nil {
			return nil, fmt.Errorf("ratelimit: %w", err)
		}
		if seen[lim.Name] {
			return nil, fmt.Errorf("ratelimit: limit %q given twice", lim.Name)
		}
		seen[lim.Name] = true
		keys[i] = l.prefix + "{" + key + "}:" + lim.Name
		kind := "w"
		if lim.Burst > 0 {
			kind = "g"
		}
		args = append(args, kind, lim.Rate, lim.Per.Microseconds(), lim.Burst)
	}
	return &Reservation{Keys: keys, Args: args, limits: limits}, nil
}

// Refused is the *serviceerror.ResourceExhausted of a refused reservation:
// crowdgate_reserve's wait (µs) and the index of the limit that decided it,
// named in the message, with RetryAfter the wait.
func (r *Reservation) Refused(wait, worst int64) *serviceerror.ResourceExhausted {
	name := "rate limit"
	if worst >= 1 && int(worst) <= len(r.limits) {
		name = r.limits[worst-1].String()
	}
	return &serviceerror.ResourceExhausted{
		Message:    "rate limit reached (" + name + ")",
		RetryAfter: roundUp(time.Duration(wait) * time.Microsecond),
	}
}

// ReserveLua is the Lua function crowdgate_reserve (reserve.lua), for a
// script that reserves with a Reservation: prepend it to the script's text.
func ReserveLua() string { return reserveLua }

// roundUp rounds d up to a whole millisecond so a caller that waits
// RetryAfter is never early by a fraction.
func roundUp(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d
}

func nonce() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sleepTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

//go:embed reserve.lua
var reserveLua string

var reserveScript = redis.NewScript(reserveLua + "return crowdgate_reserve(KEYS, ARGV, 1)\n")

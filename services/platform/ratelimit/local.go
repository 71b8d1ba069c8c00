package ratelimit

import (
	"hash/maphash"
	"sync"
	"time"
)

// Local is a rate limiter in this process's memory, for limits that must
// cost next to nothing, checked on every request (the landing's per-address
// and per-assignment limits). Each replica counts on its own: behind a load
// balancer spreading clients over n replicas, a client gets up to n times a
// limit. Where the limit guards something shared (a Toloka account's
// quota), check the shared Limiter too.
//
// Every limit is a smoothed rate (GCRA, as Limiter's with Burst > 0): Rate
// per Per, Burst at once after a quiet period; a Burst of 0 counts as 1
// (not as Limiter's sliding window). Limit.Name is the key counted under;
// two limits with one Name in one call take two slots of that key. Keys
// whose burst is whole again are dropped about once a second as new keys
// come, so memory follows the keys in use; at most about MaxKeys are kept
// (at least 64): when a key's shard is full, arbitrary keys are forgotten
// (they get a full burst back) rather than new keys refused.
// Time is measured on the monotonic clock, so a wall-clock step does not
// lock keys out.
type Local struct {
	seed    maphash.Seed
	perCap  int
	now     func() time.Time
	base    time.Time // times are nanoseconds since base
	shards  [localShards]localShard
	sweepNS int64
}

// localShards spreads keys over independently locked maps.
const localShards = 64

// DefaultLocalMaxKeys is LocalConfig.MaxKeys's default: about 25 MiB at
// most, with keys such as "asg-" and a 36-character assignment id.
const DefaultLocalMaxKeys = 1 << 18

type localShard struct {
	mu sync.Mutex
	// tat is each key's theoretical arrival time (ns since Local.base):
	// the key is refused while tat-now exceeds its burst's worth of
	// intervals.
	tat   map[string]int64
	swept int64
}

// LocalConfig configures a Local.
type LocalConfig struct {
	// MaxKeys bounds the keys remembered (DefaultLocalMaxKeys when 0).
	MaxKeys int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// NewLocal returns an in-process limiter.
func NewLocal(cfg LocalConfig) *Local {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = DefaultLocalMaxKeys
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Local{seed: maphash.MakeSeed(), perCap: max(1, cfg.MaxKeys/localShards), now: cfg.Now,
		base: cfg.Now(), sweepNS: int64(100 * time.Millisecond)}
	for i := range l.shards {
		l.shards[i].tat = make(map[string]int64)
	}
	return l
}

// Allow takes one slot in every limit (each counted under its Name), all or
// nothing. When one is full it takes none and returns how long until every
// limit would have room.
func (l *Local) Allow(limits ...Limit) (retryAfter time.Duration, ok bool) {
	now := int64(l.now().Sub(l.base)) // monotonic when the clock gives it
	// Lock each shard involved once, in index order.
	var idx [4]int
	shards := idx[:0]
	for _, lim := range limits {
		shards = append(shards, int(maphash.String(l.seed, lim.Name)%localShards))
	}
	locked := lockOrder(shards)
	for _, i := range locked {
		l.shards[i].mu.Lock()
	}
	defer func() {
		for _, i := range locked {
			l.shards[i].mu.Unlock()
		}
	}()
	var next [4]int64
	tats := next[:0]
	var wait int64
	for k, lim := range limits {
		interval := int64(lim.Per) / int64(max(lim.Rate, 1))
		tolerance := interval * int64(max(lim.Burst, 1))
		prev, ok := l.shards[shards[k]].tat[lim.Name]
		for j := range k { // the same key earlier in this call
			if limits[j].Name == lim.Name {
				prev, ok = tats[j], true
			}
		}
		if !ok {
			prev = now
		}
		tat := max(prev, now) + interval
		if over := tat - now - tolerance; over > 0 {
			wait = max(wait, over)
		}
		tats = append(tats, tat)
	}
	if wait > 0 {
		return time.Duration(wait), false
	}
	for k, lim := range limits {
		l.shards[shards[k]].store(lim.Name, tats[k], now, l.perCap, l.sweepNS)
	}
	return 0, true
}

// lockOrder returns the distinct shard indexes in ascending order.
func lockOrder(shards []int) []int {
	out := make([]int, 0, len(shards))
	for _, s := range shards {
		at := len(out)
		for j, o := range out {
			if o >= s {
				at = j
				break
			}
		}
		if at < len(out) && out[at] == s {
			continue
		}
		out = append(out, 0)
		copy(out[at+1:], out[at:])
		out[at] = s
	}
	return out
}

// localSweepEvery is how often a shard that takes a new key drops the keys
// whose burst is whole again even when it is not full, so memory follows
// the keys in use rather than every key seen up to MaxKeys.
const localSweepEvery = int64(time.Second)

// store records key's new tat. A new key first drops the keys whose burst
// is whole again (a missing key has a whole burst, so nothing changes for
// them): at most every localSweepEvery, or every sweepNS when the shard is
// full; a full shard then forgets arbitrary keys.
func (s *localShard) store(key string, tat, now int64, limit int, sweepNS int64) {
	if _, ok := s.tat[key]; !ok {
		full := len(s.tat) >= limit
		if since := now - s.swept; since >= localSweepEvery || (full && since >= sweepNS) {
			s.swept = now
			for k, t := range s.tat {
				if t <= now {
					delete(s.tat, k)
				}
			}
		}
		for k := range s.tat {
			if len(s.tat) < limit {
				break
			}
			delete(s.tat, k)
		}
	}
	s.tat[key] = tat
}

// Len is how many keys are remembered.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.tat)
		s.mu.Unlock()
	}
	return n
}

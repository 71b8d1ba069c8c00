package tolokasim

import (
	"sync"
	"time"
)

// limitKind names a per-operation quota.
type limitKind int

const (
	limitNone limitKind = iota
	limitCreateProject
	limitCreatePool
	limitUserSkills
)

type limitKey struct {
	account string
	kind    limitKind
}

type secondWindow struct {
	sec int64
	n   int
}

// rateLimiter enforces RateLimits per account with the server's clock.
type rateLimiter struct {
	mu      sync.Mutex
	limits  RateLimits
	perSec  map[string]*secondWindow
	history map[limitKey][]time.Time // admitted requests within the last day, oldest first
}

func newRateLimiter(l RateLimits) *rateLimiter {
	return &rateLimiter{limits: l.withDefaults(), perSec: map[string]*secondWindow{}, history: map[limitKey][]time.Time{}}
}

func (l *rateLimiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.perSec = map[string]*secondWindow{}
	l.history = map[limitKey][]time.Time{}
}

// allowRequest counts one API request of account in the current second of
// the clock. It returns false (retry after 1 s) past RequestsPerSecond.
func (l *rateLimiter) allowRequest(account string, now time.Time) bool {
	if l.limits.RequestsPerSecond < 0 {
		return true
	}
	sec := now.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.perSec[account]
	if w == nil {
		w = &secondWindow{}
		l.perSec[account] = w
	}
	if w.sec != sec {
		w.sec, w.n = sec, 0
	}
	if w.n >= l.limits.RequestsPerSecond {
		return false
	}
	w.n++
	return true
}

// allowCreate admits one request of kind for account, or reports the
// exceeded interval ("MIN" or "DAY") and the whole seconds until a slot
// frees up. Windows slide: a request at t counts in the minute window
// while now-t < 1 min and in the day window while now-t < 24 h.
func (l *rateLimiter) allowCreate(account string, kind limitKind, now time.Time) (ok bool, interval string, retryAfter int) {
	var perMin, perDay int
	switch kind {
	case limitCreateProject:
		perMin, perDay = l.limits.CreateProjectPerMinute, l.limits.CreateProjectPerDay
	case limitCreatePool:
		perMin, perDay = l.limits.CreatePoolPerMinute, l.limits.CreatePoolPerDay
	case limitUserSkills:
		perMin, perDay = -1, l.limits.UserSkillsPerDay
	default:
		return true, "", 0
	}
	if perMin < 0 && perDay < 0 {
		return true, "", 0
	}
	key := limitKey{account, kind}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.history[key]
	// Drop what left the day window.
	i := 0
	for i < len(h) && now.Sub(h[i]) >= 24*time.Hour {
		i++
	}
	h = h[i:]
	if perDay >= 0 && len(h) >= perDay {
		l.history[key] = h
		return false, "DAY", ceilSeconds(h[len(h)-perDay].Add(24 * time.Hour).Sub(now))
	}
	if perMin >= 0 {
		inMinute := 0
		first := -1
		for j := len(h) - 1; j >= 0 && now.Sub(h[j]) < time.Minute; j-- {
			inMinute++
			first = j
		}
		if inMinute >= perMin {
			l.history[key] = h
			// The slot frees when the oldest request that keeps the count at
			// the limit leaves the window.
			oldest := h[first+inMinute-perMin]
			if perMin == 0 {
				return false, "MIN", 60
			}
			return false, "MIN", ceilSeconds(oldest.Add(time.Minute).Sub(now))
		}
	}
	l.history[key] = append(h, now)
	return true, "", 0
}

// ceilSeconds rounds d up to whole seconds, at least 1.
func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		return 1
	}
	return s
}

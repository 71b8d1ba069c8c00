package webhook

import (
	"slices"
	"sync"
	"time"
)

// lane keeps slow endpoints from taking a replica's workers, so one
// tenant's endpoint that answers slowly (or times out) cannot hold back
// every other tenant's deliveries.
//
// An endpoint is slow from an attempt of it that took slowAfter or longer
// (a timeout included) until an attempt of it that took less, and while
// an attempt of it has been in flight for slowAfter or longer (so an
// endpoint that starts hanging is capped within slowAfter, not once its
// first attempts time out). A slow
// endpoint has at most perEndpoint attempts in flight on the replica, and
// slow endpoints together at most total (half the workers), so the other
// endpoints always keep the rest. A delivery the lane turns away is
// deferred (Service.deferDelivery: back to the schedule, no attempt
// counted). Endpoints that answer in time are never turned away, however
// many attempts they have in flight.
//
// The state is the replica's own (in memory): each replica caps its own
// attempts, and a restarted replica learns again which endpoints are slow
// from the first attempts it makes.
type lane struct {
	slowAfter          time.Duration
	perEndpoint, total int
	now                func() time.Time

	mu     sync.Mutex
	inSlow int                      // attempts in flight admitted as slow
	eps    map[string]*laneEndpoint // by laneKey
	nextID uint64
}

// laneEndpoint is one endpoint's attempts in flight (when each began, by
// ticket id) and whether its last attempt was slow.
type laneEndpoint struct {
	inFlight map[uint64]time.Time
	// order holds the ids of inFlight in the order they began (ids of
	// attempts that ended are dropped from its front as they are met), so
	// the oldest attempt in flight is found without a scan.
	order []uint64
	slow  bool
	// capped is whether the endpoint was last reported slow by exit: it is
	// capped while its last attempt was slow or one in flight is old, so
	// "answers in time again" waits until neither holds.
	capped bool
}

// slowAt reports whether the endpoint is slow at now.
func (e *laneEndpoint) slowAt(now time.Time, slowAfter time.Duration) bool {
	if e.slow {
		return true
	}
	for len(e.order) > 0 {
		began, ok := e.inFlight[e.order[0]]
		if ok {
			return now.Sub(began) >= slowAfter
		}
		e.order = e.order[1:]
	}
	return false
}

// ticket is an admitted attempt, given back to exit.
type ticket struct {
	key  string
	id   uint64
	slow bool // counted in lane.inSlow
}

// laneSweepAt is how many endpoints the lane remembers before it forgets
// those with nothing in flight (a slow one is then judged afresh).
const laneSweepAt = 4096

// newLane returns the lane of a replica with concurrency workers whose
// attempts are bounded by timeout: slow means half the timeout or 1 s,
// whichever is shorter; a slow endpoint may have a sixteenth of the
// workers in flight, slow endpoints together half (each at least 1).
func newLane(concurrency int, timeout time.Duration) *lane {
	return &lane{
		slowAfter:   min(time.Second, timeout/2),
		perEndpoint: max(1, concurrency/16),
		total:       max(1, concurrency/2),
		now:         time.Now,
		eps:         map[string]*laneEndpoint{},
	}
}

func laneKey(tenantID, endpointID string) string { return tenantID + "/" + endpointID }

// enter admits an attempt of the tenant's endpoint, or turns it away
// (false) when the endpoint is slow and at its cap, or slow endpoints are
// at theirs.
func (l *lane) enter(tenantID, endpointID string) (ticket, bool) {
	key := laneKey(tenantID, endpointID)
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.eps[key]
	if e == nil {
		if len(l.eps) >= laneSweepAt {
			for k, old := range l.eps {
				if len(old.inFlight) == 0 {
					delete(l.eps, k)
				}
			}
		}
		e = &laneEndpoint{inFlight: map[uint64]time.Time{}}
		l.eps[key] = e
	}
	now := l.now()
	l.nextID++
	t := ticket{key: key, id: l.nextID}
	if e.slowAt(now, l.slowAfter) {
		if len(e.inFlight) >= l.perEndpoint || l.inSlow >= l.total {
			return ticket{}, false
		}
		t.slow = true
		l.inSlow++
	}
	e.inFlight[t.id] = now
	if len(e.order) == cap(e.order) && len(e.order) > 2*len(e.inFlight) {
		// Mostly ids of attempts that ended: keep the live ones only.
		e.order = slices.DeleteFunc(e.order, func(id uint64) bool { _, ok := e.inFlight[id]; return !ok })
	}
	e.order = append(e.order, t.id)
	return t, true
}

// exit gives an admitted attempt back. took is how long the attempt took,
// or negative when none was made (the lease was busy, the endpoint gone):
// only an attempt made says whether the endpoint is slow. It reports
// whether the endpoint's slowness (as enter judges it: its last attempt
// slow, or one in flight for slowAfter) changed since it last reported
// it, and to what.
func (l *lane) exit(t ticket, took time.Duration) (changed, slow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.slow {
		l.inSlow--
	}
	e := l.eps[t.key]
	if e == nil {
		return false, false
	}
	delete(e.inFlight, t.id)
	if took >= 0 {
		e.slow = took >= l.slowAfter
		if capped := e.slowAt(l.now(), l.slowAfter); capped != e.capped {
			changed, e.capped = true, capped
		}
	}
	slow = e.capped
	if len(e.inFlight) == 0 && !e.slow {
		delete(l.eps, t.key)
	}
	return changed, slow
}

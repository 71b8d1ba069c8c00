package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

func TestTheLaneCapsOnlySlowEndpoints(t *testing.T) {
	// 32 workers, attempts bounded by 10 s: slow from 1 s, a slow endpoint
	// at most 2 in flight, slow endpoints together at most 16.
	type step struct {
		op       string // "enter", "exit" (the oldest attempt), "exit-newest", or "wait" (took: how long)
		endpoint string
		took     time.Duration // exit: how long the attempt took (-1: none made)
	}
	fast, slow, none := 20*time.Millisecond, 10*time.Second, time.Duration(-1)
	for _, tc := range []struct {
		name  string
		steps []step
		want  []string // per step: "in", "away" (enter); "", "slow", "fast" (exit: the change)
	}{{
		name: "a fast endpoint is never turned away",
		steps: []step{
			{"enter", "a", 0}, {"enter", "a", 0}, {"enter", "a", 0}, {"exit", "a", fast}, {"enter", "a", 0},
		},
		want: []string{"in", "in", "in", "", "in"},
	}, {
		name: "a slow attempt caps the endpoint until one answers in time",
		steps: []step{
			{"enter", "a", 0}, {"enter", "a", 0}, {"enter", "a", 0},
			{"exit", "a", slow}, // slow now, 2 in flight: at the cap
			{"enter", "a", 0},
			{"exit", "a", slow}, // 1 in flight
			{"enter", "a", 0},   // 2
			{"enter", "a", 0},
			{"enter", "b", 0}, // another endpoint is not held back
			{"exit", "a", fast},
			{"enter", "a", 0}, {"enter", "a", 0}, {"enter", "a", 0},
		},
		want: []string{"in", "in", "in", "slow", "away", "", "in", "away", "in", "fast", "in", "in", "in"},
	}, {
		name: "an exit without an attempt says nothing of the endpoint",
		steps: []step{
			{"enter", "a", 0}, {"exit", "a", slow}, {"enter", "a", 0}, {"exit", "a", none}, {"enter", "a", 0}, {"enter", "a", 0}, {"enter", "a", 0},
		},
		want: []string{"in", "slow", "in", "", "in", "in", "away"},
	}, {
		name: "an attempt in flight past the slow mark caps the endpoint before it ends",
		steps: []step{
			{"enter", "a", 0}, {"enter", "a", 0}, {"wait", "", 500 * time.Millisecond}, {"enter", "a", 0},
			{"wait", "", 600 * time.Millisecond}, // the first two in flight for 1.1 s
			{"enter", "a", 0},
			{"exit", "a", 1100 * time.Millisecond}, {"exit", "a", 1100 * time.Millisecond}, // slow now, 1 in flight
			{"enter", "a", 0}, {"enter", "a", 0},
		},
		want: []string{"in", "in", "", "in", "", "away", "slow", "", "in", "away"},
	}, {
		// It used to say "fast" (and log that the endpoint answers in time
		// again) while an older attempt still hung and kept it capped.
		name: "an answer in time while another attempt hangs leaves the endpoint slow",
		steps: []step{
			{"enter", "a", 0}, {"exit", "a", slow},
			{"enter", "a", 0}, {"wait", "", 1100 * time.Millisecond}, // hangs
			{"enter", "a", 0}, {"exit-newest", "a", fast}, // still capped: the first hangs
			{"enter", "a", 0}, {"enter", "a", 0},
			{"exit", "a", slow}, // the hanging one times out: still slow
			{"exit", "a", fast}, // nothing in flight, in time: fast now
		},
		want: []string{"in", "slow", "in", "", "in", "", "in", "away", "", "fast"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLane(32, 10*time.Second)
			clock := time.Unix(1_800_000_000, 0)
			l.now = func() time.Time { return clock }
			var tickets = map[string][]ticket{}
			var got []string
			for _, s := range tc.steps {
				switch s.op {
				case "wait":
					clock = clock.Add(s.took)
					got = append(got, "")
				case "enter":
					tk, ok := l.enter("t1", s.endpoint)
					if !ok {
						got = append(got, "away")
						continue
					}
					tickets[s.endpoint] = append(tickets[s.endpoint], tk)
					got = append(got, "in")
				case "exit", "exit-newest":
					i := 0
					if s.op == "exit-newest" {
						i = len(tickets[s.endpoint]) - 1
					}
					tk := tickets[s.endpoint][i]
					tickets[s.endpoint] = slices.Delete(tickets[s.endpoint], i, i+1)
					changed, slow := l.exit(tk, s.took)
					switch {
					case !changed:
						got = append(got, "")
					case slow:
						got = append(got, "slow")
					default:
						got = append(got, "fast")
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSlowEndpointsTogetherHaveHalfTheWorkers(t *testing.T) {
	l := newLane(8, 10*time.Second) // a slow endpoint: 1 in flight; slow ones together: 4
	for i := range 6 {
		ep := fmt.Sprint("e", i)
		tk, _ := l.enter("t1", ep)
		l.exit(tk, 10*time.Second)
	}
	admitted := 0
	for i := range 6 {
		if _, ok := l.enter("t1", fmt.Sprint("e", i)); ok {
			admitted++
		}
	}
	if admitted != 4 {
		t.Errorf("%d attempts of 6 slow endpoints admitted, want 4 (half of 8 workers)", admitted)
	}
	if _, ok := l.enter("t2", "fast"); !ok {
		t.Error("an endpoint not known to be slow was turned away")
	}
}

// hangingEndpoint is an endpoint that hangs on every request (until the
// attempt times out) until answer is called, and then answers 204.
type hangingEndpoint struct {
	srv       *httptest.Server
	mu        sync.Mutex
	hanging   bool
	tries     int
	delivered map[string]bool // by webhook-id, once answered
}

func newHangingEndpoint(t *testing.T) *hangingEndpoint {
	h := &hangingEndpoint{hanging: true, delivered: map[string]bool{}}
	release := make(chan struct{})
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The body read first: the server sees the connection close (the
		// attempt timing out) only then.
		_, _ = io.Copy(io.Discard, r.Body)
		h.mu.Lock()
		h.tries++
		hang := h.hanging
		h.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		h.mu.Lock()
		h.delivered[r.Header.Get("webhook-id")] = true
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	t.Cleanup(func() { close(release) }) // first: no handler hangs on
	return h
}

// answer makes the endpoint answer from now on.
func (h *hangingEndpoint) answer() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hanging = false
}

// attempts is how many requests it got.
func (h *hangingEndpoint) attempts() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tries
}

// got reports whether every event of ids was delivered.
func (h *hangingEndpoint) got(ids []string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if !h.delivered[id] {
			return false
		}
	}
	return true
}

// TestASlowEndpointCannotHoldBackOtherTenantsDeliveries: a tenant's
// endpoint that never answers (each attempt times out) has a backlog;
// another tenant's deliveries, queued behind it, are delivered while it
// still times out, and once it answers again every one of its deliveries
// is made (those turned away were deferred, not lost).
func TestASlowEndpointCannotHoldBackOtherTenantsDeliveries(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Settings.Concurrency = 4                         // a slow endpoint: 1 in flight
		c.Settings.AttemptTimeout = 400 * time.Millisecond // a deferral waits three of them
		c.Settings.RetrySchedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	})
	slow := newHangingEndpoint(t)
	f.create(f.ctx, slow.srv.URL)
	other := tenant.WithID(context.Background(), "t2")
	fast := newReceiver(t)
	f.create(other, fast.srv.URL)
	f.run(f.svc)

	const backlog, others = 20, 10
	var slowIDs []string
	for i := range backlog {
		slowIDs = append(slowIDs, f.event(events.TypeSessionStarted, fmt.Sprint("sessions/slow-", i)).EventId)
	}
	f.waitFor("the slow endpoint's first attempt", func() bool { return slow.attempts() > 0 })
	for i := range others {
		f.eventFor("t2", events.TypeSessionStarted, fmt.Sprint("sessions/fast-", i))
	}
	f.waitFor("the other tenant's deliveries", func() bool { return fast.count() >= others })
	// The first attempts (one per worker) all start before any times out;
	// from then on the slow endpoint has one worker, the other tenant the
	// rest. Without the cap the other tenant's deliveries wait behind the
	// backlog: 20 attempts, 400 ms each, four at a time.
	if n := slow.attempts(); n > 8 {
		t.Errorf("the slow endpoint had %d attempts before another tenant's %d deliveries were made, want at most 8", n, others)
	}
	slow.answer()
	f.waitFor("every delivery of the slow endpoint, once it answers", func() bool { return slow.got(slowIDs) })
}

// TestDeferredDeliveriesWaitInTheScheduleNotAmongPendingEntries: a slow
// endpoint's backlog, turned away by the lane, used to stay pending in the
// replica's consumer, where only reclaims (a few entries every several
// seconds, from the first shards on) bring entries back: enough of them
// starved the entries a dead replica left, on any endpoint. Deferred
// deliveries are acknowledged and wait in the schedule; the replica holds
// no more entries than its workers and read-ahead.
func TestDeferredDeliveriesWaitInTheScheduleNotAmongPendingEntries(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Settings.Concurrency = 4
		c.Settings.AttemptTimeout = 400 * time.Millisecond // a deferral waits three of them
		c.Settings.RetrySchedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	})
	slow := newHangingEndpoint(t)
	f.create(f.ctx, slow.srv.URL)
	f.run(f.svc)
	const backlog = 100
	var ids []string
	for i := range backlog {
		ids = append(ids, f.event(events.TypeSessionStarted, fmt.Sprint("sessions/s-", i)).EventId)
	}
	f.waitFor("most of the backlog deferred", func() bool { return testutil.ToFloat64(f.svc.m.deferred) >= backlog/2 })
	pending := int64(0)
	for shard := range Shards {
		p, err := f.redis.Client.XPending(f.ctx, f.svc.rec.Stream(shard), group).Result()
		if err != nil {
			t.Fatal(err)
		}
		pending += p.Count
	}
	// Workers, read-ahead, and one entry per shard a read may bring over.
	if bound := int64(4 + 4 + Shards); pending > bound {
		t.Errorf("%d entries pending in the consumer with %d deliveries deferred, want at most %d", pending, int(testutil.ToFloat64(f.svc.m.deferred)), bound)
	}
	slow.answer()
	f.waitFor("every delivery, once the endpoint answers", func() bool { return slow.got(ids) })
}

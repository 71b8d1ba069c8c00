package submission

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// fixtureBehindProxy is a fixture whose Toloka client reaches the emulator
// through the handler front makes of a reverse proxy to it.
func fixtureBehindProxy(t *testing.T, front func(rp *httputil.ReverseProxy) http.Handler) *fixture {
	t.Helper()
	return newFixtureWith(t, tolokasim.UnlimitedRateLimits(), func(f *fixture, c *toloka.Config) {
		target, err := url.Parse(f.simURL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := httptest.NewServer(front(httputil.NewSingleHostReverseProxy(target)))
		t.Cleanup(proxy.Close)
		c.ProductionURL, c.SandboxURL = proxy.URL+"/api/v1", proxy.URL+"/api/v1"
	}, nil)
}

// proxiedFixture is a fixture whose Toloka client reaches the emulator
// through a proxy that answers the first submit itself with first.
func proxiedFixture(t *testing.T, first http.HandlerFunc) *fixture {
	t.Helper()
	var left atomic.Int64
	left.Store(1)
	return fixtureBehindProxy(t, func(rp *httputil.ReverseProxy) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/api/v1/tasks/external/submit" && left.Add(-1) >= 0 {
				first(w, r)
				return
			}
			rp.ServeHTTP(w, r)
		})
	})
}

// TestARedirectedSubmitIsRetriedNotDead: Toloka's host, or a proxy in
// front of it (http to https, a moved host), answers the submit's POST
// with 301. The client used to follow it as Go does, turning the POST
// into a GET without its body; Toloka answered that GET 404, and the
// submit was DEAD though nothing about it was refused. A redirect is now
// not followed, and the submit is retried.
func TestARedirectedSubmitIsRetriedNotDead(t *testing.T) {
	var f *fixture
	f = proxiedFixture(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, f.simURL+r.URL.Path, http.StatusMovedPermanently)
	})
	s := f.toloker(tolokasim.UserState{})
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	if got := f.get(sub.SubmissionId); got.State != queued || got.GetLastError().GetHttpStatus() != http.StatusMovedPermanently {
		t.Fatalf("after a 301: %v (%v), want QUEUED for a retry", got.State, got.GetLastError())
	}
	f.run(f.svc)
	f.waitTotals("the retry delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	if n := f.ledger().Count; n != 1 {
		t.Errorf("Toloka paid %d submits, want 1", n)
	}
}

// TestARetryAfterDateFarAheadWaitsAtMostADay: one 503 whose Retry-After is
// a date decades ahead (a proxy's bad clock) used to park the submit, and
// the Toloker's pay, until then. A wait Toloka asks for is bounded by a
// day, the longest window of its rate limits.
func TestARetryAfterDateFarAheadWaitsAtMostADay(t *testing.T) {
	f := proxiedFixture(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "Fri, 01 Jan 2100 00:00:00 GMT")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"request_id":"r1","code":"REMOTE_SERVICE_UNAVAILABLE","message":"maintenance"}`))
	})
	s := f.toloker(tolokasim.UserState{})
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	got := f.get(sub.SubmissionId)
	if got.State != queued {
		t.Fatalf("state %v, want QUEUED", got.State)
	}
	if next := got.GetNextAttemptTime().AsTime(); next.After(time.Now().Add(maxTolokaWait + time.Minute)) {
		t.Errorf("the next attempt is at %s, %v away: want at most a day", next, time.Until(next).Round(time.Hour))
	}
}

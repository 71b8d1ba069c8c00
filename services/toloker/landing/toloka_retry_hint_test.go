package landing_test

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestTolokasThrottleHintReachesTheTolokersPage: Toloka throttles the
// requester's account (429, Retry-After: 30) while a Toloker lands for the
// first time. README (The Toloker's side): "A 503 takes its Retry-After
// from the cause (Toloka's hint) when it has one, else 5 s." The page must
// not tell the browser to come back (and re-ask Toloka) in 5 s when Toloka
// said 30.
func TestTolokasThrottleHintReachesTheTolokersPage(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	start := serveLanding(t, env, nil)
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/assignments", ThrottleRate: 1, RetryAfterSeconds: 30}); err != nil {
		t.Fatal(err)
	}
	defer env.Sim.ClearFaults()
	a := get(t, noRedirects, start+"?assignment_id="+aid)
	if a.status != http.StatusServiceUnavailable && a.status != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 503 (or 429)", a.status)
	}
	if got := a.header.Get("Retry-After"); got != "30" {
		t.Errorf("Toloka answered 429 with Retry-After: 30; the landing answered %d with Retry-After: %q (the page refreshes and asks Toloka again that soon)", a.status, got)
	}
}

// TestTolokasUnavailableHintReachesTheTolokersPage: Toloka answers GET
// /assignments/{id} with 503 REMOTE_SERVICE_UNAVAILABLE and Retry-After: 20.
// README: "A 503 takes its Retry-After from the cause (Toloka's hint) when
// it has one, else 5 s."
func TestTolokasUnavailableHintReachesTheTolokersPage(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) {
		target, _ := url.Parse(strings.TrimSuffix(c.ProductionURL, "/api/v1"))
		proxy := httputil.NewSingleHostReverseProxy(target)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/api/v1/assignments/") {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", "20")
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"request_id":"r1","code":"REMOTE_SERVICE_UNAVAILABLE","message":"maintenance"}`))
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		c.ProductionURL, c.SandboxURL = srv.URL+"/api/v1", srv.URL+"/api/v1"
	}})
	start := serveLanding(t, env, nil)
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	a := get(t, noRedirects, start+"?assignment_id="+aid)
	if a.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", a.status)
	}
	if got := a.header.Get("Retry-After"); got != "20" {
		t.Errorf("Toloka answered 503 with Retry-After: 20; the landing answered 503 with Retry-After: %q", got)
	}
}

package landing_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/landing"
)

// The per-address landing limit (CROWDGATE_LANDING_LIMIT_IP) counts an
// IPv6 client by its /64. Any client with IPv6 holds at least a /64 (2^64
// addresses: SLAAC privacy addresses, every cloud VM); counted by its full
// address, as it used to be, one client landed as often as it liked by
// changing the low bits of its address.
func TestThePerAddressLimitCountsAnIPv6ClientByItsSlash64(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	start := serveLanding(t, env, func(c *landing.Config) {
		c.PerIP = ratelimit.Limit{Rate: 3, Per: time.Hour, Burst: 3}
		c.PerAssignment = ratelimit.Limit{Rate: 100, Per: time.Hour, Burst: 100}
		c.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Test-Client") }
	})
	aid := env.StartAssignment(t, pool, "toloker-1")
	// The same client (one /64), ten landings.
	passed := 0
	for i := 1; i <= 10; i++ {
		a := get(t, noRedirects, start+"?assignment_id="+aid, "X-Test-Client", fmt.Sprintf("2001:db8:1:2::%x", i))
		if a.status == http.StatusSeeOther {
			passed++
		}
	}
	if passed != 3 {
		t.Errorf("%d of 10 landings from one IPv6 /64 passed a limit of 3 per client", passed)
	}
	// Another /64 is another client.
	if a := get(t, noRedirects, start+"?assignment_id="+aid, "X-Test-Client", "2001:db8:1:3::1"); a.status != http.StatusSeeOther {
		t.Errorf("a landing from the next /64 answered %d, want 303", a.status)
	}
}

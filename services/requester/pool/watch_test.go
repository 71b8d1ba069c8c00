package pool_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
)

// Three replicas poll at the same time: the tenant's open pool is read
// from Toloka once, not once per replica (each read spends the
// requester's quota); another tenant's turn is its own.
func TestOneReplicaPollsATenantsPoolsPerInterval(t *testing.T) {
	ctx := context.Background()
	env := sessiontest.New(t, sessiontest.Options{})
	acme, globex := env.NewPool(t, "acme", nil), env.NewPool(t, "globex", nil)
	reads := func() map[string]int {
		return map[string]int{
			"acme":   len(env.Sim.Requests("/api/v1/pools/" + acme.GetTolokaPoolId())),
			"globex": len(env.Sim.Requests("/api/v1/pools/" + globex.GetTolokaPoolId())),
		}
	}
	before := reads()
	tenants := func(context.Context) ([]string, error) { return []string{"acme", "globex"}, nil }
	var wg sync.WaitGroup
	for range 3 {
		replica := pool.NewTransitions(env.Catalog, env.Events, nil)
		wg.Go(func() { replica.Poll(ctx, tenants, time.Minute) })
	}
	wg.Wait()
	after := reads()
	for _, tenantID := range []string{"acme", "globex"} {
		if n := after[tenantID] - before[tenantID]; n != 1 {
			t.Errorf("%s's open pool was read %d times by three replicas polling at once, want 1", tenantID, n)
		}
	}
}

package registry_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
)

// TestConcurrentSweepsRecordEachExpiryOnce: replicas sweeping the same
// tenant at the same time record one EXPIRED end per abandoned session,
// after its one start, and nothing for a session not yet due.
func TestConcurrentSweepsRecordEachExpiryOnce(t *testing.T) {
	ctx := context.Background()
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool := env.NewPool(t, tenant.Default, nil)
	const n = 12
	for i := range n {
		if _, err := env.Sessions.Land(ctx, env.StartAssignment(t, pool, fmt.Sprint("toloker-", i))); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(24 * time.Hour)
	late := env.StartAssignment(t, pool, "toloker-late")
	if _, err := env.Sessions.Land(ctx, late); err != nil {
		t.Fatal(err)
	}

	replicas := []*registry.Registry{env.Tolokers}
	for range 3 {
		replicas = append(replicas, registry.New(env.Redis.Client, env.Redis.Prefix, registry.Settings{}, env.Events, clock.Now, slog.New(slog.DiscardHandler)))
	}
	var wg sync.WaitGroup
	for _, r := range replicas {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := r.SweepTenant(ctx, tenant.Default); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()

	evs, _, err := env.Events.List(ctx, tenant.Default, events.Query{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	started, expired := map[string]int{}, map[string]int{}
	for _, ev := range evs {
		id := ev.GetSession().GetSessionId()
		switch {
		case ev.GetType() == events.TypeSessionStarted:
			started[id]++
		case ev.GetType() == events.TypeSessionEnded && ev.GetSession().GetEndReason() == crowdgatev1.EndReason_END_REASON_EXPIRED:
			expired[id]++
			if ev.GetSession().GetAssignmentId() == late {
				t.Errorf("the session not yet due expired")
			}
			if !ev.GetSession().GetEndTime().AsTime().Equal(ev.GetSession().GetExpireTime().AsTime()) {
				t.Errorf("session %s: end_time %v, want its deadline %v", id, ev.GetSession().GetEndTime().AsTime(), ev.GetSession().GetExpireTime().AsTime())
			}
		default:
			t.Errorf("unexpected event %s", ev.GetType())
		}
	}
	if len(expired) != n || len(started) != n+1 {
		t.Fatalf("%d sessions expired and %d started, want %d and %d", len(expired), len(started), n, n+1)
	}
	for id, c := range expired {
		if c != 1 || started[id] != 1 {
			t.Errorf("session %s: %d starts and %d expiries, want one each", id, started[id], c)
		}
	}
}

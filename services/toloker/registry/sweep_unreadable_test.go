package registry_test

import (
	"context"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
)

// TestOneUnreadableSessionDoesNotStopTheSweep: the sweep reads the
// sessions it ends, for their state at the end; one record the store
// cannot read (a bad write) made that read fail, and the tenant's sweep
// failed on the same batch every time, so no abandoned session of the
// tenant ended again. Their events now carry the state at their start
// (found by the review of this session's diff).
func TestOneUnreadableSessionDoesNotStopTheSweep(t *testing.T) {
	ctx := context.Background()
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool := env.NewPool(t, tenant.Default, nil)
	var aids []string
	for _, u := range []string{"toloker-1", "toloker-2"} {
		aid := env.StartAssignment(t, pool, u)
		l, err := env.Sessions.Land(ctx, aid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code); err != nil {
			t.Fatal(err)
		}
		aids = append(aids, aid)
	}
	// toloker-1's record is unreadable (a bit flip, a bad write)
	key := env.Redis.Prefix + "ses:{" + aids[0] + "}"
	if n, _ := env.Redis.Client.Exists(ctx, key).Result(); n != 1 {
		t.Fatalf("no session record at %s", key)
	}
	env.Redis.Client.Set(ctx, key, "\xff\xff\xff", 0)
	clock.Advance(24 * time.Hour)
	if _, err := env.Tolokers.SweepTenant(ctx, tenant.Default); err != nil {
		t.Errorf("SweepTenant: %v", err)
	}
	evs, _, err := env.Events.List(ctx, tenant.Default, events.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	ended := 0
	for _, ev := range evs {
		if ev.GetType() == events.TypeSessionEnded {
			ended++
		}
	}
	if ended != 2 {
		t.Errorf("%d session.ended events after the sweep, want 2 (toloker-2's session is readable)", ended)
	}
}

package registry_test

import (
	"context"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
)

// TestAnExpiredSessionsEventCarriesItsSubmits: a Toloker works, the
// platform submits twice without close_session, the Toloker walks away and
// the expiry sweep ends the session. The session.ended (EXPIRED) event must
// carry the session's state right after the change (README, Events): the
// two submits and their reward, as GetSession shows them, not the snapshot
// taken when the session started.
func TestAnExpiredSessionsEventCarriesItsSubmits(t *testing.T) {
	ctx := context.Background()
	clock := sessiontest.NewClock()
	env := sessiontest.New(t, sessiontest.Options{Now: clock.Now})
	pool := env.NewPool(t, tenant.Default, nil)
	l, err := env.Sessions.Land(ctx, env.StartAssignment(t, pool, "toloker-1"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code)
	if err != nil {
		t.Fatal(err)
	}
	sid := x.GetSession().GetSessionId()
	reward, _ := money.Parse("0.05")
	for range 2 {
		if err := env.Sessions.RecordSubmit(ctx, tenant.Default, sid, "", reward); err != nil {
			t.Fatal(err)
		}
	}
	before, err := env.Sessions.Get(ctx, tenant.Default, sid)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(24 * time.Hour)
	if _, err := env.Tolokers.SweepTenant(ctx, tenant.Default); err != nil {
		t.Fatal(err)
	}
	evs, _, err := env.Events.List(ctx, tenant.Default, events.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		if ev.GetType() != events.TypeSessionEnded {
			continue
		}
		found = true
		s := ev.GetSession()
		if s.GetEndReason() != crowdgatev1.EndReason_END_REASON_EXPIRED {
			t.Errorf("end reason %v, want EXPIRED", s.GetEndReason())
		}
		if s.GetSubmitsCount() != before.GetSubmitsCount() || s.GetRewardTotal() != before.GetRewardTotal() {
			t.Errorf("session.ended (EXPIRED) event says submits_count=%d reward_total=%q; the session had submits_count=%d reward_total=%q",
				s.GetSubmitsCount(), s.GetRewardTotal(), before.GetSubmitsCount(), before.GetRewardTotal())
		}
	}
	if !found {
		t.Fatal("no session.ended event")
	}
}

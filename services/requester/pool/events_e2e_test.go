package pool_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// TestPoolOpensAndClosesAreEvents: opening and closing a pool are
// pool.opened and pool.closed events, and so is a close Toloka makes on
// its own (the pool expired), learned by the poll of open pools, with
// Toloka's last_close_reason; each once, though the state is read again.
func TestPoolOpensAndClosesAreEvents(t *testing.T) {
	clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: clock, Config: func(c *gateway.Config) {
		c.PoolWatch.Interval = 20 * time.Millisecond
	}})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	if _, err := env.Pools.ClosePool(ctx, &crowdgatev1.ClosePoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // reading the state again records nothing new
		if _, err := env.Pools.GetPool(ctx, &crowdgatev1.GetPoolRequest{PoolId: p.GetPoolId()}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(31 * 24 * time.Hour) // past will_expire: Toloka closes it

	want := []string{
		"pool.opened POOL_STATUS_OPEN",
		"pool.closed CLOSE_REASON_MANUAL",
		"pool.opened POOL_STATUS_OPEN",
		"pool.closed CLOSE_REASON_EXPIRED",
	}
	var got []string
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: []string{"pool.*"}})
		if err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, ev := range resp.GetEvents() {
			pl := ev.GetPool()
			if ev.GetResource() != "pools/"+p.GetPoolId() || pl.GetPoolId() != p.GetPoolId() {
				t.Fatalf("%s is about %s", ev.GetType(), ev.GetResource())
			}
			if ev.GetType() == "pool.opened" {
				got = append(got, ev.GetType()+" "+pl.GetStatus().String())
			} else {
				got = append(got, ev.GetType()+" "+pl.GetLastCloseReason().String())
			}
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pool events (-want +got):\n%s", diff)
	}
}

// TestAnUpdateThatFindsAPoolClosedByTolokaRecordsTheClose: Toloka closes
// an open pool on its own (it expired), and the requester updates the
// pool before the watch has read it. The update used to store the state
// Toloka answered with (CLOSED, a new last_stopped) without its event;
// the watch then found nothing changed, and polls only open pools, so
// pool.closed was never recorded. Every stored change of state records
// its events, an update's too: the event is there when the update returns.
func TestAnUpdateThatFindsAPoolClosedByTolokaRecordsTheClose(t *testing.T) {
	for _, tc := range []struct {
		name string
		pool func(now time.Time) *crowdgatev1.Pool
		mask []string
	}{
		{"priority only", func(time.Time) *crowdgatev1.Pool { return &crowdgatev1.Pool{Priority: proto.Int32(7)} }, []string{"priority"}},
		{"a whole update", func(now time.Time) *crowdgatev1.Pool {
			return &crowdgatev1.Pool{PrivateName: "renamed", WillExpire: timestamppb.New(now.Add(24 * time.Hour))}
		}, []string{"private_name", "will_expire"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
			env := gatewaytest.Start(t, gatewaytest.Options{Clock: clock, Config: func(c *gateway.Config) {
				c.PoolWatch.Interval = time.Hour // the update, not the watch, must record the close
			}})
			ctx := env.Ctx()
			p := env.OpenPool(ctx, env.NewAPIKey("acme"))
			clock.Advance(31 * 24 * time.Hour) // past will_expire: Toloka closes it
			upd := tc.pool(clock.Now())
			upd.PoolId = p.GetPoolId()
			got, err := env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{Pool: upd, UpdateMask: &fieldmaskpb.FieldMask{Paths: tc.mask}})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED {
				t.Fatalf("the update answered status %v, want CLOSED (as Toloka has it)", got.GetPool().GetStatus())
			}
			resp, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: []string{"pool.closed"}})
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, ev := range resp.GetEvents() {
				if ev.GetResource() == "pools/"+p.GetPoolId() {
					reasons = append(reasons, ev.GetPool().GetLastCloseReason().String())
				}
			}
			if diff := cmp.Diff([]string{"CLOSE_REASON_EXPIRED"}, reasons); diff != "" {
				t.Errorf("pool.closed events of the pool, by last_close_reason (-want +got):\n%s", diff)
			}
		})
	}
}

package submission

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestSubmissionOutcomesAreEventsOnce: a submit Toloka refuses raises one
// submission.dead with Toloka's error; the operator's retry one
// submission.retried; its delivery one submission.delivered with Toloka's
// flags, in that order, each reaching the tenant's log once through the
// relay (two replicas relay).
func TestSubmissionOutcomesAreEventsOnce(t *testing.T) {
	f := newFixture(t, nil)
	f.run(f.svc)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	go f.svc.RelayEvents(ctx)
	go f.newService(nil).RelayEvents(ctx)

	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "refused", Reward: "0.75"}).Submission
	if sub.State != dead {
		t.Fatalf("Submit answered %v, want DEAD", sub)
	}
	f.sim.ClearFaults()
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: sub.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	f.waitTotals("delivered after the retry", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })

	want := []string{events.TypeSubmissionDead, events.TypeSubmissionRetried, events.TypeSubmissionDelivered}
	var evs []*crowdgatev1.Event
	for deadline := time.Now().Add(10 * time.Second); ; {
		var err error
		if evs, _, err = f.svc.events.List(f.ctx, tenant.Default, events.Query{Limit: 100}); err != nil {
			t.Fatal(err)
		}
		if len(evs) >= len(want) || time.Now().After(deadline) {
			break
		}
		<-time.After(20 * time.Millisecond)
	}
	var got []string
	for _, ev := range evs {
		got = append(got, ev.GetType())
		if ev.GetResource() != "submissions/"+sub.SubmissionId || ev.GetSubmission().GetSubmissionId() != sub.SubmissionId {
			t.Errorf("%s is about %s (%s)", ev.GetType(), ev.GetResource(), ev.GetSubmission().GetSubmissionId())
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events (-want +got):\n%s", diff)
	}
	if d := evs[0].GetSubmission(); d.GetState() != dead || d.GetLastError().GetHttpStatus() != 400 || d.GetAttempts() != 1 {
		t.Errorf("submission.dead carries %v, want DEAD with Toloka's 400 after one attempt", d)
	}
	if q := evs[1].GetSubmission(); q.GetState() != queued {
		t.Errorf("submission.retried carries %v, want QUEUED", q)
	}
	if d := evs[2].GetSubmission(); d.GetState() != delivered || d.GetFlags() == nil || !d.GetFlags().GetFilterMatch() || d.GetDeliverTime() == nil || d.GetAttempts() != 2 {
		t.Errorf("submission.delivered carries %v, want DELIVERED with Toloka's flags on attempt 2", d)
	}
	// Every intent was moved: the shard stream empties (the relay deletes
	// intents just after it has recorded them, so the log may show them
	// a moment before).
	shard, _ := parseID(sub.SubmissionId)
	for deadline := time.Now().Add(10 * time.Second); ; <-time.After(20 * time.Millisecond) {
		n := f.redis.Client.XLen(f.ctx, f.svc.st.intentKey(shard)).Val()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d intents left in the shard's stream", n)
		}
	}
}

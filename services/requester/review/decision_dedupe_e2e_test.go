package review_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// TestADecisionSentAgainAfterADayIsNotRecordedTwice: an accept sent again
// (a client's job retried the next day, or an operator re-running the
// day's decisions) finds the assignment ACCEPTED, answers
// FAILED_PRECONDITION, and records the decision's event only if the
// decision is recent: the log's dedupe set remembers an id for 24 hours
// while the log keeps the event 7 days. It used to record
// assignment.accepted again, with the same event_id.
//
// A day passes: the fake clock of the gateway and the emulator moves 25
// hours, and the seen-set score of the recorded ids is aged by as much
// (what Redis TIME would say a day later); the next append of the tenant
// (another assignment's accept) trims it, as the append script does.
func TestADecisionSentAgainAfterADayIsNotRecordedTwice(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := env.OpenPool(ctx, key)
	id := env.StartAssignment(p, "toloker-1")
	submitSession(env, key, p, "toloker-1")
	if _, err := env.Reviews.AcceptAssignment(ctx, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id}); err != nil {
		t.Fatal(err)
	}

	// A day passes: every id recorded so far is 25 h old.
	env.Clock.Advance(25 * time.Hour)
	_, seen := events.Keys(env.Redis.Prefix, p.GetTenantId())
	rdb := env.Redis.Client
	members, err := rdb.ZRange(context.Background(), seen, 0, -1).Result()
	if err != nil || len(members) == 0 {
		t.Fatalf("seen set %s: %v members, err %v", seen, len(members), err)
	}
	old := float64(time.Now().Add(-25 * time.Hour).UnixMilli())
	for _, m := range members {
		rdb.ZAddXX(context.Background(), seen, redis.Z{Score: old, Member: m})
	}
	// The tenant records something else that day: another accept.
	id2 := env.StartAssignment(p, "toloker-2")
	submitSession(env, key, p, "toloker-2")
	if _, err := env.Reviews.AcceptAssignment(ctx, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id2}); err != nil {
		t.Fatal(err)
	}

	_, err = env.Reviews.AcceptAssignment(ctx, &crowdgatev1.AcceptAssignmentRequest{AssignmentId: id})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition) // accepted already

	resp, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: []string{"assignment.accepted"}})
	if err != nil {
		t.Fatal(err)
	}
	var mine []*crowdgatev1.Event
	for _, ev := range resp.GetEvents() {
		if ev.GetAssignment().GetAssignmentId() == id {
			mine = append(mine, ev)
		}
	}
	resp.Events = mine
	if n := len(resp.GetEvents()); n != 1 {
		var ids []string
		for _, ev := range resp.GetEvents() {
			ids = append(ids, ev.GetEventId()+"@"+ev.GetCursor())
		}
		t.Fatalf("%d assignment.accepted events for one accept, want 1: %v", n, ids)
	}
}

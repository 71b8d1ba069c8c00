package submission

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestACloseWaitsForASubmitRetriedForOverAMonth: a side-door submit of a
// Toloker waits QUEUED for its pool, stopped at Toloka for over a month,
// retried all the while. The Toloker's set of unsettled submissions, which
// a close_session waits behind, lived 30 days from the last submit that
// joined it: past that, the close no longer saw the earlier submit, went
// first, and Toloka refused the earlier work for good. Each retry now
// renews the set (found by the money-path review).
func TestACloseWaitsForASubmitRetriedForOverAMonth(t *testing.T) {
	f := newFixture(t, nil)
	if f.redis.Mini == nil {
		t.Skip("needs miniredis to pass a month")
	}
	f.toloker(tolokasim.UserState{}) // the Toloker and the pool, at Toloka
	f.setPoolStatus(t, "close", "CLOSED")
	const user = "user-side"
	start := timestamppb.New(time.Now().Add(-time.Minute))
	first := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: user, RetryId: "task-1", Reward: "0.40", StartTime: start}).Submission
	if got := f.get(first.SubmissionId); got.State != queued || got.Attempts != 1 {
		t.Fatalf("a submit to a stopped pool: %v after %d attempts, want QUEUED after 1", got.State, got.Attempts)
	}
	f.run(f.svc)
	// A retry every 29 days (every few minutes in truth): the set's life
	// runs from the latest.
	for i := range 2 {
		f.redis.Mini.FastForward(29 * 24 * time.Hour)
		f.retryAndWait(t, first.SubmissionId, int32(i+2))
	}
	yes := true
	closing := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: user, RetryId: "task-2", Reward: "0.10", CloseSession: &yes, StartTime: start}).Submission
	shard, _ := parseID(closing.SubmissionId)
	j := job{e: entry{shard: shard, tenantID: closing.TenantId, id: closing.SubmissionId}, sub: closing}
	if !f.svc.mustWait(f.ctx, j) {
		t.Errorf("the close_session does not wait for the Toloker's earlier submit, QUEUED for 58 days: it would close the assignment first and leave that work unpaid")
	}
}

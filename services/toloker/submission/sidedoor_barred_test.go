package submission

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestASideDoorResendAfterItsOwnFlagsIsAReplay: a side-door submit
// (pool_id + user_id, with a retry_id) is delivered and paid; Toloka's
// restriction_match ends the Toloker's live session (RESTRICTED). The
// platform did not get the answer and sends the same submit again: it is
// answered as a replay, as the same resend through the session is. It
// used to be refused FAILED_PRECONDITION ("may not submit") before the
// idempotency key was looked at, although it was accepted and paid.
func TestASideDoorResendAfterItsOwnFlagsIsAReplay(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{Restricted: true})
	end := timestamppb.Now()
	req := &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "side-1", Reward: "0.40", EndTime: end}
	first := f.submit(req)
	if first.Submission.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		t.Fatalf("first: %v", first.Submission.State)
	}
	if got := f.session(s.SessionId); got.GetEndReason() != crowdgatev1.EndReason_END_REASON_RESTRICTED {
		t.Fatalf("session: %v %v", got.GetState(), got.GetEndReason())
	}
	again, err := f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "side-1", Reward: "0.40", EndTime: end})
	if err != nil {
		t.Fatalf("the resend of a submit that was accepted and paid (%s) is refused: %v", first.Submission.SubmissionId, err)
	}
	if !again.Replayed || again.Submission.SubmissionId != first.Submission.SubmissionId {
		t.Errorf("resend: replayed=%v id=%s, want a replay of %s", again.Replayed, again.Submission.SubmissionId, first.Submission.SubmissionId)
	}
}

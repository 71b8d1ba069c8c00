package submission

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// oldestUnpaid is OldestUnpaid, failing the test on an error.
func (f *fixture) oldestUnpaid(t *testing.T) time.Time {
	t.Helper()
	since, err := f.svc.OldestUnpaid(f.ctx)
	if err != nil {
		t.Fatalf("OldestUnpaid: %v", err)
	}
	return since
}

// TestTheOldestUnpaidSubmitIsSeenUntilItIsPaid: a submit that Toloka
// keeps refusing for a while (here its pool is stopped) waits QUEUED and
// is retried for ever (CROWDGATE_SUBMIT_MAX_ATTEMPTS 0): its Toloker is
// unpaid all that time. The operator sees since when the oldest such
// submit has waited (crowdgate_submission_oldest_unpaid_seconds) until it
// is paid. Nothing showed it before: the outbox's lag counts only entries
// due now, and a retry waiting for its backoff is not due.
func TestTheOldestUnpaidSubmitIsSeenUntilItIsPaid(t *testing.T) {
	f := newFixture(t, nil)
	if got := f.oldestUnpaid(t); !got.IsZero() {
		t.Fatalf("with nothing submitted, the oldest unpaid submit is from %s, want none", got)
	}
	s := f.toloker(tolokasim.UserState{})
	f.setPoolStatus(t, "close", "CLOSED")

	before := time.Now()
	first := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	after := time.Now()
	if st := f.get(first.SubmissionId).State; st != queued {
		t.Fatalf("a submit to a stopped pool is %v, want QUEUED", st)
	}
	since := f.oldestUnpaid(t)
	if since.Before(before.Add(-time.Millisecond)) || since.After(after.Add(time.Millisecond)) {
		t.Fatalf("the oldest unpaid submit waits since %s, want the first submit's acceptance (%s to %s)", since, before, after)
	}
	second := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-2", Reward: "0.40"}).Submission
	if got := f.oldestUnpaid(t); !got.Equal(since) {
		t.Errorf("after a second submit the oldest unpaid waits since %s, want the first's %s", got, since)
	}

	// The pool opens: both are paid, and nothing is left unpaid.
	f.setPoolStatus(t, "open", "OPEN")
	f.retryNow(first.SubmissionId)
	f.retryNow(second.SubmissionId)
	f.run(f.svc)
	f.waitTotals("both submits delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 2 })
	if got := f.oldestUnpaid(t); !got.IsZero() {
		t.Errorf("once every submit is paid, the oldest unpaid is from %s, want none", got)
	}
}

// TestADeadLetterLeavesTheUnpaidAndItsRetryJoinsThemAgain: a DEAD
// submission waits for an operator, not for Toloka (crowdgate_submission_dead_letters
// says so), so it is not among the submits waiting to be paid; the
// operator's retry puts it back among them, from the retry's time.
func TestADeadLetterLeavesTheUnpaidAndItsRetryJoinsThemAgain(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	f.setPoolStatus(t, "close", "CLOSED")
	f.setPoolStatus(t, "archive", "ARCHIVED")
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	if st := f.get(sub.SubmissionId).State; st != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		t.Fatalf("a submit to an archived pool is %v, want DEAD", st)
	}
	if got := f.oldestUnpaid(t); !got.IsZero() {
		t.Fatalf("with only a dead letter, the oldest unpaid is from %s, want none", got)
	}
	before := time.Now()
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: sub.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	if got := f.oldestUnpaid(t); got.Before(before.Add(-time.Millisecond)) {
		t.Errorf("after the operator's retry the oldest unpaid waits since %s, want the retry's time (after %s)", got, before)
	}
}

// TestASubmitSettledWithoutLeavingTheUnpaidIsNotCounted: a replica from
// before the unpaid set settles a submission without taking it out; the
// set must not then report it unpaid for ever (a false alert that never
// clears).
func TestASubmitSettledWithoutLeavingTheUnpaidIsNotCounted(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	f.run(f.svc)
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	f.waitTotals("the submit delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	// As the old replica left it: still in the set, from long ago.
	key := f.svc.st.unpaidKey(mustShard(sub.SubmissionId))
	f.redis.Client.ZAdd(f.ctx, key, redis.Z{Score: 1, Member: schedMember(tenant.Default, sub.SubmissionId)})
	if got := f.oldestUnpaid(t); !got.IsZero() {
		t.Errorf("a delivered submit left in the set reads as unpaid since %s, want none", got)
	}
	if n := f.redis.Client.ZCard(f.ctx, key).Val(); n != 0 {
		t.Errorf("the set keeps %d members after the read, want the settled one removed", n)
	}
}

// TestASubmitQueuedBeforeTheSetJoinsItAtItsNextRetry: a submission queued
// before the unpaid set existed (or accepted by a replica from before it)
// is not in it, and the gauge would read 0 for the very submits stuck for
// days that its alert is for. Its next retry adds it, from its creation
// (found by the review of this session's diff).
func TestASubmitQueuedBeforeTheSetJoinsItAtItsNextRetry(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	f.setPoolStatus(t, "close", "CLOSED")
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	if st := f.get(sub.SubmissionId).State; st != queued {
		t.Fatalf("state %v, want QUEUED", st)
	}
	// As the accept script from before the set leaves it: not a member.
	key := f.svc.st.unpaidKey(mustShard(sub.SubmissionId))
	f.redis.Client.ZRem(f.ctx, key, schedMember(tenant.Default, sub.SubmissionId))
	if got := f.oldestUnpaid(t); !got.IsZero() {
		t.Fatalf("the set still has the submission (%s); the test needs it out", got)
	}
	f.run(f.svc)
	f.retryAndWait(t, sub.SubmissionId, 2)
	if got, want := f.oldestUnpaid(t), idTime(sub.SubmissionId).Truncate(time.Millisecond); !got.Equal(want) {
		t.Errorf("after its retry the submission waits unpaid since %s, want its creation %s", got, want)
	}
}

// TestSettledMembersAheadDoNotHideTheOldestUnpaid: more settled members at
// the head of the set than one read looks at (left by replicas from
// before the set) made the read answer "none waits" for the shard, though
// a QUEUED submission waited behind them.
func TestSettledMembersAheadDoNotHideTheOldestUnpaid(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	f.setPoolStatus(t, "close", "CLOSED")
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	key := f.svc.st.unpaidKey(mustShard(sub.SubmissionId))
	for i := range unpaidLook*3 + 8 {
		f.redis.Client.ZAdd(f.ctx, key, redis.Z{Score: float64(i + 1), Member: schedMember(tenant.Default, fmt.Sprintf("sub_settled%03d", i))})
	}
	if got := f.oldestUnpaid(t); got.IsZero() {
		t.Errorf("with %d settled members ahead of a QUEUED submission, OldestUnpaid reads none", unpaidLook*3+8)
	}
}

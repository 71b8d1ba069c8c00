package submission

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// setPoolStatus asks the emulator to open or close the fixture's pool and
// waits until it has.
func (f *fixture) setPoolStatus(t *testing.T, verb, status string) {
	t.Helper()
	f.simDo("POST", "/api/v1/pools/"+f.tolokaPool+"/"+verb, nil)
	for deadline := time.Now().Add(5 * time.Second); f.simDo("GET", "/api/v1/pools/"+f.tolokaPool, nil)["status"] != status; {
		if time.Now().After(deadline) {
			t.Fatalf("the pool is not %s after 5 s", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retryAndWait makes the scheduled retry of the default tenant's
// submission id due now, and waits (10 s at most) until a running worker
// has made it: its attempts reach attempts.
func (f *fixture) retryAndWait(t *testing.T, id string, attempts int32) {
	t.Helper()
	f.retryNow(id)
	for deadline := time.Now().Add(10 * time.Second); f.get(id).Attempts < attempts; {
		if time.Now().After(deadline) {
			t.Fatalf("no retry of the queued submit %s: fewer than %d attempts after 10 s", id, attempts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// retryNow makes the scheduled retry of the default tenant's submission id
// due now.
func (f *fixture) retryNow(id string) {
	f.redis.Client.ZAdd(f.ctx, f.svc.st.schedKey(mustShard(id)), redis.Z{Score: 0, Member: schedMember(tenant.Default, id)})
}

// TestASubmitToAPoolClosedForAWhileIsPaidOnceItOpens: the requester stops
// a pool to edit it (seed 000: a pool is stopped to be changed), and a
// Toloker still on the platform submits meanwhile: Toloka answers 409
// INAPPROPRIATE_STATUS (appropriate_statuses [OPEN]). The submit waits
// QUEUED and is paid once the pool is open again. It used to be DEAD at
// once, as a refusal a repeat would get again, and waited for an operator.
func TestASubmitToAPoolClosedForAWhileIsPaidOnceItOpens(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	f.setPoolStatus(t, "close", "CLOSED")
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	got := f.get(sub.SubmissionId)
	if got.State != queued || got.GetLastError().GetCode() != "INAPPROPRIATE_STATUS" {
		t.Fatalf("a submit to a closed pool: %v (%v), want QUEUED", got.State, got.GetLastError())
	}
	if next := got.GetNextAttemptTime().AsTime(); next.Before(time.Now().Add(poolClosedWait / 2)) {
		t.Errorf("next attempt at %s: want it a while ahead, not a spin while the pool is closed", next)
	}

	// The edit is done: the pool is open again, and the retry is due.
	f.setPoolStatus(t, "open", "OPEN")
	f.retryNow(sub.SubmissionId)
	f.run(f.svc)
	f.waitTotals("the submit delivered", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 1 })
	if n := f.ledger().Count; n != 1 {
		t.Errorf("Toloka paid %d submits, want 1", n)
	}
}

// TestASubmitToAPoolArchivedInTolokaIsDead: a pool archived in Toloka
// (outside Crowdgate) never opens again, so a submit it refuses is DEAD at
// once, for an operator, rather than waiting QUEUED for ever.
func TestASubmitToAPoolArchivedInTolokaIsDead(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	f.setPoolStatus(t, "close", "CLOSED")
	f.setPoolStatus(t, "archive", "ARCHIVED")
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	if got := f.get(sub.SubmissionId); got.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD || got.GetLastError().GetCode() != "INAPPROPRIATE_STATUS" {
		t.Errorf("a submit to an archived pool: %v (%v), want DEAD", got.State, got.GetLastError())
	}
}

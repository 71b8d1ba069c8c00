package submission

import (
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// An attempt's outcome recorded twice for one call (its reply lost, as in
// a Redis restart; here every outcome is) counts one attempt: with CROWDGATE_SUBMIT_MAX_ATTEMPTS
// a submission is not made DEAD, its Toloker unpaid, an attempt early.
// Here two attempts fail and the third, the last allowed, is paid.
func TestAnAttemptRecordedTwiceCountsOnce(t *testing.T) {
	hook := &redistest.Resend{Script: redistest.ReadScript(t, "lua/finish.lua")}
	f := newFixture(t, nil)
	hooked := f.redis.HookedClient(t, hook)
	f.svc = f.newService(func(c *Config) {
		c.Redis = hooked
		c.Settings.MaxAttempts = 3
	})
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	// The Toloka client tries each attempt 4 times: 8 failures are two
	// failed attempts.
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", FailNext: 8}); err != nil {
		t.Fatal(err)
	}
	resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "r-1", Reward: "0.75"})
	f.waitTotals("the submission settled", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool {
		return t.GetDelivered()+t.GetDead() == 1
	})
	got := f.get(resp.Submission.SubmissionId)
	if !hook.Done() {
		t.Fatal("no outcome was recorded twice; the test needs one")
	}
	if got.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED || got.GetAttempts() != 3 {
		t.Errorf("after two failed attempts the submission is %v after %d attempts; want DELIVERED at the third", got.GetState(), got.GetAttempts())
	}
}

// An operator's retry of a DEAD submission sent twice for one call (its
// reply lost) answers that the retry was made, not that the submission is
// QUEUED and cannot be retried; the submission is then paid once.
func TestARetrySentTwiceAnswersTheRetry(t *testing.T) {
	f := newFixture(t, nil)
	resend := &redistest.Resend{Script: redistest.ReadScript(t, "lua/requeue.lua")}
	f.svc = f.newService(func(c *Config) { c.Redis = f.redis.HookedClient(t, resend) })
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	resp := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "r-1", Reward: "0.75"})
	f.waitTotals("the submission is dead", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.GetDead() == 1 })
	f.sim.ClearFaults()
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: resp.Submission.SubmissionId}); err != nil {
		t.Fatalf("RetrySubmission sent twice = %v, want the retry made", err)
	}
	if !resend.Done() {
		t.Fatal("the retry was not sent twice; the test needs it to")
	}
	tot := f.waitTotals("the retried submission is delivered", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.GetDelivered() == 1 })
	if tot.GetDead() != 0 || tot.GetQueued() != 0 || tot.GetRewardDelivered() != "0.75" {
		t.Errorf("totals %v, want 1 delivered (0.75), none dead or queued", tot)
	}
	if n := f.ledger().Count; n != 1 {
		t.Errorf("Toloka paid %d submits, want 1", n)
	}
}

// An attempt's outcome resent after the next attempt's outcome was
// recorded (its reply lost; go-redis resends it seconds later, after a
// read timeout, while another replica made the next attempt) counts no
// attempt again.
func TestAnOutcomeResentAfterTheNextOneCountsOnce(t *testing.T) {
	hook := &redistest.Resend{Script: redistest.ReadScript(t, "lua/finish.lua"), Once: true}
	f := newFixture(t, nil)
	hooked := f.redis.HookedClient(t, hook)
	f.svc = f.newService(func(c *Config) {
		c.Redis = hooked
		c.Settings.SyncTimeout = -1 // no inline attempt; workers not run
	})
	s := f.toloker(tolokasim.UserState{})
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "r-1", Reward: "0.75"}).Submission
	shard, _ := parseID(sub.SubmissionId)
	key := f.svc.st.recordKey(shard, sub.TenantId, sub.SubmissionId)
	eid, err := f.redis.Client.HGet(f.ctx, key, "eid").Result()
	if err != nil || eid == "" {
		t.Fatalf("entry: %q, %v", eid, err)
	}
	e := entry{shard: shard, tenantID: sub.TenantId, id: sub.SubmissionId, entryID: eid}
	retry := outcome{kind: outRetry, backoff: time.Millisecond, err: &crowdgatev1.TolokaError{}}
	// Attempt 1 fails (its finish runs twice at once: recognised).
	if applied, err := f.svc.st.finish(f.ctx, e, sub, 0, "lease-a", time.Now(), retry); err != nil || applied != outRetry || !hook.Done() {
		t.Fatalf("finish A = %q, %v (resent %v)", applied, err, hook.Done())
	}
	lost := hook.Sent()
	// Attempt 2 (another lease) fails too and is recorded.
	e.entryID = "" // as promoted and claimed; "" matches the cleared eid
	if applied, err := f.svc.st.finish(f.ctx, e, sub, 1, "lease-b", time.Now(), retry); err != nil || applied != outRetry {
		t.Fatalf("finish B = %q, %v", applied, err)
	}
	// Attempt 1's call arrives once more.
	if err := f.redis.Client.Do(f.ctx, lost...).Err(); err != nil {
		t.Fatal(err)
	}
	if att, _ := f.redis.Client.HGet(f.ctx, key, "att").Int(); att != 2 {
		t.Errorf("attempts = %d after two attempts; want 2 (the resent outcome counted again)", att)
	}
}

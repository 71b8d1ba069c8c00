package submission

import (
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestARequeuedDeadLetterGetsItsAttemptsAgain: with
// CROWDGATE_SUBMIT_MAX_ATTEMPTS set, a submit that used up its attempts in
// a Toloka outage goes DEAD; the operator puts it back (RetrySubmission),
// and it gets MaxAttempts attempts again. The first transient failure
// after the requeue used to make it DEAD again at once, without a single
// backoff retry.
func TestARequeuedDeadLetterGetsItsAttemptsAgain(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.MaxAttempts = 3 })
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	sub := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-1", Reward: "0.40"}).Submission
	f.waitTotals("dead after 3 attempts", 5*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Dead == 1 })
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: sub.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	// Toloka is still down: the retry's attempts run out again, three of
	// them, not one.
	f.waitTotals("dead again", 5*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Dead == 1 })
	if got := f.get(sub.SubmissionId); got.Attempts != 6 {
		t.Errorf("dead again after %d attempts in all, want 6: 3, and 3 more for the operator's retry", got.Attempts)
	}
}

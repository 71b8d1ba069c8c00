package submission

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestACloseWaitsForARequeuedDeadLetter: a dead letter put back by
// RetrySubmission is QUEUED again, earlier work of the same session: it
// joins the session's and the Toloker's sets of unsettled submissions
// again, so a close_session queued meanwhile waits for it. (requeue.lua
// used to leave it out of them: the close could reach Toloka first, Toloka
// closed the assignment, and the requeued work was refused and DEAD
// again, for good.)
func TestACloseWaitsForARequeuedDeadLetter(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	// A goes DEAD (a refusal an operator later fixes).
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	a := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-a", Reward: "0.40"}).Submission
	if a.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		t.Fatalf("A: %v, want DEAD", a.State)
	}
	// Toloka is unavailable for a moment: the close is queued.
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	c := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-c", Reward: "0.60", CloseSession: proto.Bool(true)}).Submission
	if c.State != queued {
		t.Fatalf("C: %v, want QUEUED", c.State)
	}
	// The operator puts A back.
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: a.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	if got := f.get(a.SubmissionId).State; got != queued {
		t.Fatalf("A after the retry: %v", got)
	}
	cshard, _ := parseID(c.SubmissionId)
	if !f.svc.mustWait(f.ctx, job{e: entry{shard: cshard, tenantID: tenant.Default, id: c.SubmissionId}, sub: c}) {
		t.Errorf("the close_session %s does not wait behind the session's requeued submit %s (QUEUED): it may close the assignment first and leave %s refused and unpaid",
			c.SubmissionId, a.SubmissionId, a.SubmissionId)
	}
}

// TestRequeuedDeadLettersOfOneSessionArePaidInAnyOrder: a Toloker's
// submit A and their closing submit C both went DEAD (a refusal later
// fixed: the pool was closed for an edit, say). The operator retries both
// dead letters, C first: C waits for A, and both are paid. (Neither used
// to be in a pending set any more, so C did not wait for A: C closed the
// assignment, and A was refused, 409 no ACTIVE assignment, DEAD for good.)
func TestRequeuedDeadLettersOfOneSessionArePaidInAnyOrder(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.Concurrency = 1 })
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{400: 1}}); err != nil {
		t.Fatal(err)
	}
	a := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-a", Reward: "0.40"}).Submission
	c := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "task-c", Reward: "0.60", CloseSession: proto.Bool(true)}).Submission
	if a.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD || c.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		t.Fatalf("A %v, C %v; want both DEAD", a.State, c.State)
	}
	f.sim.ClearFaults()
	for _, id := range []string{c.SubmissionId, a.SubmissionId} {
		if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: id}); err != nil {
			t.Fatal(err)
		}
	}
	f.run(f.svc)
	f.waitTotals("both settled", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Queued == 0 })
	if got := f.get(a.SubmissionId); got.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		t.Errorf("A after the operator's retries: %v (%v); the close %s went first", got.State, got.LastError, f.get(c.SubmissionId).State)
	}
}

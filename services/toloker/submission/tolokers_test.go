package submission

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	"fmt"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// pay reads one Toloker's pay counters.
func (f *fixture) pay(user string) TolokerPay {
	f.t.Helper()
	got, err := f.svc.TolokerPay(f.ctx, tenant.Default, []string{user})
	if err != nil {
		f.t.Fatal(err)
	}
	return got[user]
}

// TestTolokerPayCountsEachSubmissionOnce: a Toloker's pay counters follow
// the submissions' states exactly. Lost answers resent with the same
// retry_id, a repeated finish, a dead submission retried, and a late
// delivery of a dead one each count once; the reward is the ledger's, to
// the digit.
func TestTolokerPayCountsEachSubmissionOnce(t *testing.T) {
	f := newFixture(t, nil)
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", LostResponseRate: 0.5, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("pay-%02d", i)
		ids = append(ids, id)
		f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: id, Reward: "0.01000001"})
	}
	f.waitTotals("all delivered", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 12 })
	f.sim.ClearFaults()
	f.paidOnce(ids)
	ledger := f.sim.Ledger(tolokasim.LedgerFilter{UserID: s.UserId})
	if p := f.pay(s.UserId); p.Delivered != 12 || p.Dead != 0 || p.RewardDelivered != ledger.RewardTotal.String() || p.RewardUnits != 12*1000001 {
		t.Errorf("pay %+v, want 12 delivered for the ledger's %s", p, ledger.RewardTotal)
	}

	// A finish recorded again (a replica retrying its write, a redelivery)
	// counts nothing more.
	sub := f.get(f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "again", Reward: "0.5"}).Submission.SubmissionId)
	if sub.State != delivered {
		t.Fatalf("submit: %v", sub)
	}
	shard, _ := parseID(sub.SubmissionId)
	e := entry{shard: shard, tenantID: tenant.Default, id: sub.SubmissionId}
	before := f.pay(s.UserId)
	if applied, err := f.svc.st.finish(f.ctx, e, sub, 1, "another-token", time.Now(), outcome{kind: outDelivered}); err != nil || applied != "skip" {
		t.Fatalf("finish again: %q, %v; want skip", applied, err)
	}
	if after := f.pay(s.UserId); after != before {
		t.Errorf("a repeated finish changed the pay: %+v -> %+v", before, after)
	}

	// Dead: counted dead; retried and dead again: still one; a late
	// delivery of it: delivered, no longer dead.
	f.nextID++
	stranger := fmt.Sprintf("user%04d", f.nextID)
	refused := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: stranger, RetryId: "d1", Reward: "0.25", EndTime: timestamppb.Now()}).Submission
	if refused.State != dead || refused.AssignmentId != "" {
		t.Fatalf("submit without an assignment: %v, want DEAD naming no assignment", refused)
	}
	if p := f.pay(stranger); p.Dead != 1 || p.Delivered != 0 || p.RewardUnits != 0 {
		t.Errorf("pay of the dead submit %+v, want 1 dead", p)
	}
	if _, err := f.svc.RetrySubmission(f.ctx, &crowdgatev1.RetrySubmissionRequest{SubmissionId: refused.SubmissionId}); err != nil {
		t.Fatal(err)
	}
	f.waitTotals("dead again", 10*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Dead == 1 && t.Queued == 0 })
	if p := f.pay(stranger); p.Dead != 1 {
		t.Errorf("pay after a retry that died again %+v, want 1 dead", p)
	}
	shard, _ = parseID(refused.SubmissionId)
	if applied, err := f.svc.st.finish(f.ctx, entry{shard: shard, tenantID: tenant.Default, id: refused.SubmissionId}, refused, 1,
		"late", time.Now(), outcome{kind: outDelivered}); err != nil || applied != outDelivered {
		t.Fatalf("late delivery of the dead submit: %q, %v", applied, err)
	}
	if p := f.pay(stranger); p.Dead != 0 || p.Delivered != 1 || p.RewardDelivered != "0.25" {
		t.Errorf("pay after the late delivery %+v, want 1 delivered, 0.25, none dead", p)
	}
	if p := f.pay("nobody"); p != (TolokerPay{RewardDelivered: "0.00"}) {
		t.Errorf("pay of a Toloker never paid: %+v", p)
	}
}

// TestSubmissionsNameTheirAssignment: a session's submission names the
// session's assignment; a submit by pool and user names the assignment of
// the Toloker's live session in the pool, or none; AssignmentWork finds
// them by assignment with their totals.
func TestSubmissionsNameTheirAssignment(t *testing.T) {
	f := newFixture(t, nil)
	s := f.toloker(tolokasim.UserState{})
	bySession := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.10"}).Submission
	byPool := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, Reward: "0.20"}).Submission
	for _, sub := range []*crowdgatev1.Submission{bySession, byPool, f.get(bySession.SubmissionId)} {
		if sub.AssignmentId != s.AssignmentId {
			t.Errorf("submission %s names assignment %q, want %s", sub.SubmissionId, sub.AssignmentId, s.AssignmentId)
		}
	}
	work, err := f.svc.AssignmentWork(f.ctx, tenant.Default, poolID, []string{s.AssignmentId, "0000000001--000000000000000000000099"})
	if err != nil {
		t.Fatal(err)
	}
	q := work[s.AssignmentId]
	if len(work) != 1 || q.GetSubmissionsCount() != 2 || q.GetRewardTotal() != "0.30" || q.GetRewardDelivered() != "0.30" || q.GetSessionId() != s.SessionId {
		t.Errorf("AssignmentWork = %v, want the assignment's 2 submissions, 0.30, in session %s", work, s.SessionId)
	}
}

package submission

import (
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestACloseSessionWaitsForTheTolokersSubmitsHoweverTheyCame: a
// close_session waits behind every earlier unsettled submit of the
// Toloker in the pool. Its wait was chosen per submit (the session's, or
// the Toloker's for a submit without one), so submits of one Toloker in
// one pool fell into two groups when the live session appeared or went
// between them, and the close went first: the earlier work was refused by
// Toloka for good.
func TestACloseSessionWaitsForTheTolokersSubmitsHoweverTheyCame(t *testing.T) {
	yes := true
	closeWaits := func(f *fixture, closeReq *crowdgatev1.SubmitRequest) bool {
		b := f.submit(closeReq).Submission
		shard, _ := parseID(b.SubmissionId)
		return f.svc.mustWait(f.ctx, job{e: entry{shard: shard, tenantID: tenant.Default, id: b.SubmissionId}, sub: b})
	}
	t.Run("named submits, then side-door close after the platform ended the session", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
		s := f.toloker(tolokasim.UserState{})
		a := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "a", Reward: "0.05", EndTime: timestamppb.Now()}).Submission
		if a.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED {
			t.Fatalf("A: %v", a.State)
		}
		f.sessions.mu.Lock()
		f.sessions.sessions[tenant.Default+"/"+s.SessionId].State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		f.sessions.sessions[tenant.Default+"/"+s.SessionId].EndReason = crowdgatev1.EndReason_END_REASON_ENDED
		f.sessions.mu.Unlock()
		if !closeWaits(f, &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "b", Reward: "0.05", CloseSession: &yes, EndTime: timestamppb.Now()}) {
			t.Errorf("a side-door close_session does not wait behind the Toloker's queued submit %s of their ended session", a.SubmissionId)
		}
	})
	t.Run("side-door submits, then close after a landing", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
		s := f.toloker(tolokasim.UserState{})
		f.sessions.mu.Lock()
		f.sessions.sessions[tenant.Default+"/"+s.SessionId].State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		f.sessions.sessions[tenant.Default+"/"+s.SessionId].EndReason = crowdgatev1.EndReason_END_REASON_ENDED
		f.sessions.mu.Unlock()
		a := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "a", Reward: "0.05", EndTime: timestamppb.Now()}).Submission
		if a.SessionId != "" {
			t.Fatalf("A has session %q", a.SessionId)
		}
		// The Toloker lands again: a new live session on the same assignment.
		s2 := &crowdgatev1.Session{SessionId: "ses_new", TenantId: tenant.Default, ProjectId: projectID, PoolId: poolID,
			AssignmentId: s.AssignmentId, UserId: s.UserId, State: crowdgatev1.SessionState_SESSION_STATE_ACTIVE,
			CreateTime: timestamppb.Now(), ExpireTime: s.ExpireTime, ReturnUrl: returnURL}
		f.sessions.put(s2)
		if !closeWaits(f, &crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "b", Reward: "0.05", CloseSession: &yes, EndTime: timestamppb.Now()}) {
			t.Errorf("a close_session of the new session %s does not wait behind the Toloker's queued side-door submit %s", s2.SessionId, a.SubmissionId)
		}
	})
}

// TestASettledSubmitLeftInAPendingSetHoldsNoCloseBack: a replica from
// before the Toloker's pending set settles a submit without taking it off
// that set. Such a member, no longer QUEUED, held every later
// close_session of the Toloker back until the set expired (30 days).
func TestASettledSubmitLeftInAPendingSetHoldsNoCloseBack(t *testing.T) {
	f := newFixture(t, nil) // delivered at once
	s := f.toloker(tolokasim.UserState{})
	a := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "a", Reward: "0.05", EndTime: timestamppb.Now()}).Submission
	if a.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
		t.Fatalf("A: %v", a.State)
	}
	shard, _ := parseID(a.SubmissionId)
	// As an old replica's finish leaves it.
	if err := f.redis.Client.SAdd(f.ctx, f.svc.st.tolokerPendingKey(shard, tenant.Default, poolID, s.UserId), a.SubmissionId).Err(); err != nil {
		t.Fatal(err)
	}
	yes := true
	b := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "b", Reward: "0.05", CloseSession: &yes, EndTime: timestamppb.Now()}).Submission
	bshard, _ := parseID(b.SubmissionId)
	if f.svc.mustWait(f.ctx, job{e: entry{shard: bshard, tenantID: tenant.Default, id: b.SubmissionId}, sub: b}) {
		t.Error("a close_session waits behind a submit delivered already")
	}
}

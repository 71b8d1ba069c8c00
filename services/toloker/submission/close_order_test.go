package submission

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestTwoQueuedClosesOfOneTolokerGoOldestFirst: two close_session submits
// of one Toloker in one pool are queued during a Toloka outage (the first
// through the session, the second through the side door once Submit has
// ended the session). When Toloka is back, the older goes first. Each
// close used to find the other still QUEUED in the Toloker's pending set
// and wait for it, for ever: the Toloker's work was never paid.
func TestTwoQueuedClosesOfOneTolokerGoOldestFirst(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Settings.BaseBackoff, c.Settings.MaxBackoff = 100*time.Millisecond, 200*time.Millisecond
	})
	f.run(f.svc)
	s := f.toloker(tolokasim.UserState{})
	if err := f.sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", ErrorRates: map[int]float64{503: 1}}); err != nil {
		t.Fatal(err)
	}
	c1 := f.submit(&crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: "close-1", Reward: "0.40", CloseSession: proto.Bool(true)})
	if c1.Submission.State != queued || !c1.SessionEnded {
		t.Fatalf("first close during the outage: %s ended=%v", c1.Submission.State, c1.SessionEnded)
	}
	// The platform sends the Toloker's final submit by pool and user
	// (its session has been closed by the first): accepted, queued.
	c2 := f.submit(&crowdgatev1.SubmitRequest{PoolId: poolID, UserId: s.UserId, RetryId: "close-2", Reward: "0.60",
		CloseSession: proto.Bool(true), EndTime: timestamppb.Now()})
	if c2.Submission.State != queued {
		t.Fatalf("second close during the outage: %s", c2.Submission.State)
	}
	f.sim.ClearFaults()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && f.ledger().Count == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	tot := f.totals()
	if f.ledger().Count == 0 {
		w1 := f.svc.mustWait(f.ctx, job{e: entry{shard: mustShard(c1.Submission.SubmissionId), tenantID: tenant.Default, id: c1.Submission.SubmissionId}, sub: c1.Submission})
		w2 := f.svc.mustWait(f.ctx, job{e: entry{shard: mustShard(c2.Submission.SubmissionId), tenantID: tenant.Default, id: c2.Submission.SubmissionId}, sub: c2.Submission})
		t.Fatalf("10s after Toloka came back nothing was paid: totals %v; close-1 waits=%v, close-2 waits=%v (each waits for the other)", tot, w1, w2)
	}
	if first := f.ledger().Entries[0].RetryID; first != "close-1" {
		t.Errorf("the first close paid is %s, want the older, close-1", first)
	}
}

func mustShard(id string) int { s, _ := parseID(id); return s }

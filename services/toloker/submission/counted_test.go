package submission

import (
	"context"
	"testing"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// deletingSessions runs del before counting a submit in its session: the
// retention sweep deleting the record while a replay counts it.
type deletingSessions struct {
	*fakeSessions
	del func()
}

func (d *deletingSessions) RecordSubmit(ctx context.Context, tenantID, sessionID, version, submissionID string, reward money.Decimal) error {
	if d.del != nil {
		d.del()
	}
	return d.fakeSessions.RecordSubmit(ctx, tenantID, sessionID, version, submissionID, reward)
}

// TestAReplayCountingASubmitDoesNotMakeItsDeletedRecordAgain: a replay of
// a submit whose first answer was lost (sc "0") is answered from its key
// whatever its age (retention.go), so the sweep may delete its record while
// the replay counts it. Marking it counted must not make the record again
// (a plain HSET would: a hash holding only sc, no index entry, no TTL,
// never swept; found by the review of this session's diff).
func TestAReplayCountingASubmitDoesNotMakeItsDeletedRecordAgain(t *testing.T) {
	f := newFixture(t, nil)
	var recordKey string
	ds := &deletingSessions{fakeSessions: f.sessions}
	f.svc = f.newService(func(c *Config) {
		c.Redis = f.redis.HookedClient(t, &redistest.LoseReply{Script: redistest.ReadScript(t, "lua/accept.lua")})
		c.Sessions = ds
	})
	s := f.toloker(tolokasim.UserState{})
	req := &crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.75", RetryId: "work-1"}
	if _, err := f.svc.Submit(f.ctx, req); err == nil {
		t.Fatal("the first submit's reply was not lost")
	}
	ds.del = func() {
		// the record as the replay read it, deleted now (retention sweep)
		list, _ := f.svc.ListSubmissions(f.ctx, &crowdgatev1.ListSubmissionsRequest{PoolId: poolID})
		for _, sub := range list.GetSubmissions() {
			shard, _ := parseID(sub.GetSubmissionId())
			recordKey = f.svc.st.recordKey(shard, tenant.Default, sub.GetSubmissionId())
		}
		if recordKey != "" {
			f.redis.Client.Del(context.Background(), recordKey)
		}
		ds.del = nil
	}
	if resp := f.submit(req); !resp.GetReplayed() {
		t.Fatalf("the resend was not a replay: %v", resp)
	}
	if recordKey == "" {
		t.Fatal("no record found to delete")
	}
	n, err := f.redis.Client.Exists(context.Background(), recordKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		fields, _ := f.redis.Client.HGetAll(context.Background(), recordKey).Result()
		ttl, _ := f.redis.Client.TTL(context.Background(), recordKey).Result()
		t.Errorf("the deleted record %s exists again after the replay: %v (TTL %v)", recordKey, fields, ttl)
	}
}

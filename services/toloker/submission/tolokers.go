package submission

import (
	"context"
	"slices"
	"strconv"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// TolokerPay is what the outbox counted for one Toloker of a tenant, over
// every pool: submits Toloka accepted and refused for good, and the reward
// it accepted. The counters change in the finish script with the
// submission's state (a submission is counted when it becomes DELIVERED or
// DEAD, and un-counted as dead when it leaves DEAD), so a retried finish or
// a redelivery counts nothing twice; the reward is integer units of 1e-8
// USD, never a float.
type TolokerPay struct {
	// Delivered and Dead count submissions.
	Delivered, Dead int64
	// RewardUnits is the reward delivered in units of 1e-8 USD;
	// RewardDelivered the same as a decimal ("10.52").
	RewardUnits     int64
	RewardDelivered string
}

// TolokerPay reads the pay counters of userIDs (every shard's, in one
// pipeline). A Toloker the outbox never paid has zero counters.
func (s *Service) TolokerPay(ctx context.Context, tenantID string, userIDs []string) (map[string]TolokerPay, error) {
	shards, err := s.shardCount(ctx)
	if err != nil {
		return nil, err
	}
	cmds := make([][]*redis.SliceCmd, len(userIDs))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range userIDs {
			cmds[i] = make([]*redis.SliceCmd, shards)
			for shard := range shards {
				cmds[i][shard] = p.HMGet(ctx, s.st.payKey(shard, tenantID, u), "delivered", "dead", "rd")
			}
		}
		return nil
	})
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	out := make(map[string]TolokerPay, len(userIDs))
	for i, u := range userIDs {
		var p TolokerPay
		for _, c := range cmds[i] {
			vals := c.Val()
			n := make([]int64, 3)
			for k := range n {
				if str, ok := vals[k].(string); ok {
					n[k], _ = strconv.ParseInt(str, 10, 64)
				}
			}
			p.Delivered += n[0]
			p.Dead += n[1]
			p.RewardUnits += n[2]
		}
		p.RewardDelivered = formatUnits(p.RewardUnits)
		out[u] = p
	}
	return out, nil
}

// maxListedPerAssignment bounds the submissions AssignmentWork lists for
// one assignment (its counts and totals cover them all).
const maxListedPerAssignment = 100

// AssignmentWork returns, for each of a pool's assignments that Crowdgate
// received work for, its submissions (oldest first, at most 100), their
// count and total reward, the part delivered, and the session they came in,
// as the Crowdgate part of a review queue entry. Assignments without
// submissions are left out.
func (s *Service) AssignmentWork(ctx context.Context, tenantID, poolID string, assignmentIDs []string) (map[string]*crowdgatev1.QueuedAssignment, error) {
	shards, err := s.shardCount(ctx)
	if err != nil {
		return nil, err
	}
	// Each shard holds the assignment's submissions placed there.
	idx := make([][]*redis.StringSliceCmd, len(assignmentIDs))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, aid := range assignmentIDs {
			idx[i] = make([]*redis.StringSliceCmd, shards)
			for shard := range shards {
				idx[i][shard] = p.ZRange(ctx, s.st.assignmentKey(shard, tenantID, aid), 0, -1)
			}
		}
		return nil
	})
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	out := make(map[string]*crowdgatev1.QueuedAssignment)
	for i, aid := range assignmentIDs {
		var ids []string
		for _, c := range idx[i] {
			ids = append(ids, c.Val()...)
		}
		if len(ids) == 0 {
			continue
		}
		slices.Sort(ids) // oldest first: ids begin with their creation time
		recs, err := s.st.getMany(ctx, tenantID, ids)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			continue // expired since the index was read (retention.go)
		}
		var total, delivered int64
		q := &crowdgatev1.QueuedAssignment{SubmissionsCount: int64(len(recs))}
		for _, r := range recs {
			total += r.units
			if r.sub.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
				delivered += r.units
			}
			if q.SessionId == "" {
				q.SessionId = r.sub.GetSessionId()
			}
			if len(q.Submissions) < maxListedPerAssignment {
				q.Submissions = append(q.Submissions, r.sub)
			}
		}
		q.RewardTotal, q.RewardDelivered = formatUnits(total), formatUnits(delivered)
		out[aid] = q
	}
	return out, nil
}

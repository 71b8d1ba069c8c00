package submission

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// SeedDelivered writes n DELIVERED submissions of a tenant's pool straight
// into Redis in the outbox's layout (record and pool index only: no
// totals, idempotency keys or stream entries), spread over the default
// shards, made one millisecond apart
// from start, for benchmarks and tests that need a pool far larger than
// submits could fill in reasonable time (the export's memory check).
// fill sets each submission's request part (user, reward, ...); its
// reward must be a valid decimal. Writes go in pipelines of 1,000.
func SeedDelivered(ctx context.Context, rdb redis.UniversalClient, prefix, tenantID, poolID string, n int, start time.Time,
	fill func(i int, sub *crowdgatev1.Submission)) error {
	st := &store{rdb: rdb, prefix: prefix}
	for lo := 0; lo < n; lo += 1000 {
		p := rdb.Pipeline()
		for i := lo; i < min(lo+1000, n); i++ {
			at := start.Add(time.Duration(i) * time.Millisecond)
			shard := i % DefaultShards // spread like submits without a retry_id
			id := newID(at, shard)
			sub := &crowdgatev1.Submission{SubmissionId: id, TenantId: tenantID, PoolId: poolID, RetryId: id, CreateTime: timestamppb.New(at)}
			fill(i, sub)
			d, err := money.Parse(sub.GetReward())
			if err != nil {
				return fmt.Errorf("submission %d: reward %q: %w", i, sub.GetReward(), err)
			}
			units, err := toUnits(d)
			if err != nil {
				return err
			}
			sub.State, sub.Attempts, sub.Flags, sub.DeliverTime, sub.LastAttemptTime = 0, 0, nil, nil, nil
			body, err := proto.Marshal(sub)
			if err != nil {
				return err
			}
			ms := strconv.FormatInt(at.Add(time.Second).UnixMilli(), 10)
			p.HSet(ctx, st.recordKey(shard, tenantID, id), "pb", body, "st", stDelivered, "att", "1",
				"amt", units, "fl", "101", "dt", ms, "lat", ms, "eid", "")
			p.ZAdd(ctx, st.indexKey(shard, tenantID, poolID), redis.Z{Member: id})
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

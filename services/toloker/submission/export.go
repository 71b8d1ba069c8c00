package submission

import (
	"context"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// ExportBatch is how many submissions Export reads from Redis at a time.
const ExportBatch = 256

// Export walks a tenant's pool's submissions, oldest first, after the
// submission id after ("" from the first), calling emit with each and its
// cursor (its id) until the pool's index is exhausted, ctx ends or emit
// fails. It holds one batch (ExportBatch records) at a time, whatever the
// pool's size. The caller has checked that the pool is the tenant's.
// A malformed after, or one of another pool's shard, is INVALID_ARGUMENT
// naming cursor.
func (s *Service) Export(ctx context.Context, tenantID, poolID, after string, emit func(sub *crowdgatev1.Submission, cursor string) error) error {
	shard := shardOf(tenantID, poolID)
	lo := "-"
	if after != "" {
		if afterShard, ok := parseID(after); !ok || afterShard != shard {
			return serviceerror.NewInvalidArgument("cursor", "is not a cursor of this export")
		}
		lo = "(" + after
	}
	index := s.st.indexKey(shard, tenantID, poolID)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ids, err := s.rdb.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: lo, Max: "+", Count: ExportBatch}).Result()
		if err != nil {
			return storage.Unavailable(err)
		}
		recs, err := s.st.getMany(ctx, shard, tenantID, ids)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := emit(r.sub, r.sub.GetSubmissionId()); err != nil {
				return err
			}
		}
		if len(ids) < ExportBatch {
			return nil
		}
		lo = "(" + ids[len(ids)-1]
	}
}

package submission

import (
	"context"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// ExportBatch is how many submissions Export reads from Redis at a time.
const ExportBatch = 256

// Export walks a tenant's pool's submissions, oldest first, after the
// submission id after ("" from the first), calling emit with each and its
// cursor (its id) until the pool's index is exhausted, ctx ends or emit
// fails. It holds one batch (ExportBatch records, and ExportBatch ids of
// each shard's part of the pool's index) at a time, whatever the pool's
// size. The caller has checked that the pool is the tenant's. A malformed
// after is INVALID_ARGUMENT naming cursor.
func (s *Service) Export(ctx context.Context, tenantID, poolID, after string, emit func(sub *crowdgatev1.Submission, cursor string) error) error {
	shards, err := s.shardCount(ctx)
	if err != nil {
		return err
	}
	lo := "-"
	if after != "" {
		if _, ok := parseID(after); !ok {
			return serviceerror.NewInvalidArgument("cursor", "is not a cursor of this export")
		}
		lo = "(" + after
	}
	// Every shard holds a part of the pool's index: merged, oldest first.
	index := func(shard int) string { return s.st.indexKey(shard, tenantID, poolID) }
	merged := newIndexMerge(s.rdb, shardKeys(shards, index), lo, "+", false, ExportBatch)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ids, err := merged.next(ctx, ExportBatch)
		if err != nil {
			return err
		}
		recs, err := s.st.getMany(ctx, tenantID, ids)
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
	}
}

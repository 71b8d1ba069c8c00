package registry

import (
	"context"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/redis/go-redis/v9"
)

// ExportBatch is how many Tolokers Export reads from Redis at a time.
const ExportBatch = 256

// Export walks the Tolokers who had a session in a tenant's pool, the least
// recently active in it first, after the cursor after ("" from the first),
// calling emit with each and its cursor until the pool's activity index is
// exhausted, ctx ends or emit fails. It holds one batch at a time. A
// Toloker active in the pool during the walk moves to its end and may be
// emitted twice (activity only grows, so none is skipped). The caller has
// checked that the pool is the tenant's. A malformed after is
// INVALID_ARGUMENT naming cursor.
func (s *Service) Export(ctx context.Context, tenantID, poolID, after string, emit func(t *crowdgatev1.Toloker, cursor string) error) error {
	index := s.reg.poolKey(tenantID, poolID)
	// Older entries are past the retention (the index drops them lazily).
	min := func() int64 { return s.reg.now().Add(-s.reg.retention).UnixMilli() }
	return storage.WalkZ(ctx, s.reg.rdb, index, after, min, ExportBatch, func(zs []redis.Z) error {
		users := make([]string, len(zs))
		for i, z := range zs {
			users[i] = z.Member.(string)
		}
		got, err := s.read(ctx, tenantID, users)
		if err != nil {
			return err
		}
		// read keeps the order and leaves out the forgotten.
		j := 0
		for _, z := range zs {
			if j == len(got) || got[j].GetUserId() != z.Member.(string) {
				continue
			}
			if err := emit(got[j], storage.CursorOf(z)); err != nil {
				return err
			}
			j++
		}
		return nil
	})
}

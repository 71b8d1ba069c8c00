package session

import (
	"context"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/redis/go-redis/v9"
)

// ExportBatch is how many sessions ExportLive reads from Redis at a time.
const ExportBatch = 256

// ExportLive walks a tenant's pool's live sessions (in the pool's live
// index, not past their expiry), the soonest to expire first, after the
// cursor after ("" from the first), calling emit with each and its cursor
// until the index is exhausted, ctx ends or emit fails. It holds one batch
// at a time. Ended sessions are not indexed by pool, so they are not
// walked. The caller has checked that the pool is the tenant's. A
// malformed after is INVALID_ARGUMENT naming cursor.
func (s *Service) ExportLive(ctx context.Context, tenantID, poolID, after string, emit func(sess *crowdgatev1.Session, cursor string) error) error {
	key := s.store.liveKey(tenantID, poolID)
	// Entries at or before now have expired (the index drops them lazily).
	now := s.now().UnixMilli() + 1
	return storage.WalkZ(ctx, s.store.rdb, key, after, func() int64 { return now }, ExportBatch, func(zs []redis.Z) error {
		aids := make([]string, 0, len(zs))
		for _, z := range zs {
			if aid, ok := assignmentOfSession(z.Member.(string)); ok {
				aids = append(aids, aid)
			}
		}
		raws, err := s.store.getMany(ctx, aids)
		if err != nil {
			return err
		}
		for _, z := range zs {
			sid := z.Member.(string)
			aid, _ := assignmentOfSession(sid)
			raw, ok := raws[aid]
			if !ok {
				continue
			}
			r, err := unmarshalRecord(raw)
			if err != nil {
				return err
			}
			if r.session.GetTenantId() != tenantID || r.session.GetSessionId() != sid {
				continue
			}
			s.view(r)
			if err := emit(r.session, storage.CursorOf(z)); err != nil {
				return err
			}
		}
		return nil
	})
}

package session

import (
	"context"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
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
	var cur *storage.ZCursor
	if after != "" {
		c, ok := storage.ParseZCursor(after)
		if !ok {
			return serviceerror.NewInvalidArgument("cursor", "is not a cursor of this export")
		}
		cur = &c
	}
	key := s.store.liveKey(tenantID, poolID)
	// Entries at or before now have expired (the index drops them lazily).
	min := s.now().UnixMilli() + 1
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		zs, err := storage.ZAfter(ctx, s.store.rdb, key, cur, min, ExportBatch)
		if err != nil {
			return err
		}
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
			c := storage.ZCursor{Score: int64(z.Score), Member: sid}
			if err := emit(r.session, c.String()); err != nil {
				return err
			}
		}
		if len(zs) < ExportBatch {
			return nil
		}
		last := zs[len(zs)-1]
		cur = &storage.ZCursor{Score: int64(last.Score), Member: last.Member.(string)}
	}
}

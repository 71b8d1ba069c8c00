package storage

import (
	"context"
)

// IDs returns the ids of every record under parent ("" is the tenant's
// list of all records of this kind), without reading the records: one
// command, for samplers that visit each record's other keys.
func (s *Store[M]) IDs(ctx context.Context, tenantID, parent string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, s.indexKey(tenantID, parent), 0, -1).Result()
	return ids, Unavailable(err)
}

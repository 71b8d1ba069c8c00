package catalog

import "context"

// PoolIDs returns the id of every pool of a tenant, archived ones included,
// without reading the pools (the gateway's state gauges visit each).
func (c *Catalog) PoolIDs(ctx context.Context, tenantID string) ([]string, error) {
	return c.pools.IDs(ctx, tenantID, "")
}

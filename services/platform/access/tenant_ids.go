package access

import "context"

// TenantIDs returns the id of every tenant (tenants are never deleted), for
// samplers that visit every tenant's records (the gateway's state gauges).
func (s *Service) TenantIDs(ctx context.Context) ([]string, error) {
	return s.tenants.IDs(ctx, globalOwner, "")
}

package access

import (
	"context"
	"unicode/utf8"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// maxDisplayName bounds display names, in characters.
const maxDisplayName = 200

// CreateTenant adds a tenant (the platform's administrator only).
func (s *Service) CreateTenant(ctx context.Context, req *crowdgatev1.CreateTenantRequest) (*crowdgatev1.CreateTenantResponse, error) {
	if err := requirePlatformAdmin(ctx); err != nil {
		return nil, err
	}
	if err := checkDisplayName(req.GetDisplayName()); err != nil {
		return nil, err
	}
	t := &crowdgatev1.Tenant{
		TenantId:    storage.NewID("tnt"),
		DisplayName: req.GetDisplayName(),
		CreateTime:  timestamp(s.now()),
	}
	if err := s.tenants.Create(ctx, globalOwner, t.TenantId, t); err != nil {
		return nil, err
	}
	s.known.Store(t.TenantId, true)
	return &crowdgatev1.CreateTenantResponse{Tenant: t}, nil
}

// ListTenants pages through tenants, newest first (the platform's
// administrator only).
func (s *Service) ListTenants(ctx context.Context, req *crowdgatev1.ListTenantsRequest) (*crowdgatev1.ListTenantsResponse, error) {
	if err := requirePlatformAdmin(ctx); err != nil {
		return nil, err
	}
	page, err := paging.Parse("tenants", req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	ts, next, err := s.tenants.List(ctx, globalOwner, "", page, nil)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListTenantsResponse{Tenants: ts, NextPageToken: next}, nil
}

// CreateApiKey creates a key for a tenant and returns its secret, this once
// (an ADMIN caller that may act for the tenant, see requireKeyAdmin).
func (s *Service) CreateApiKey(ctx context.Context, req *crowdgatev1.CreateApiKeyRequest) (*crowdgatev1.CreateApiKeyResponse, error) {
	if err := s.requireKeyAdmin(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if err := checkDisplayName(req.GetDisplayName()); err != nil {
		return nil, err
	}
	switch req.GetScope() {
	case crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN:
	default:
		return nil, serviceerror.NewInvalidArgument("scope", "required: READ, WRITE or ADMIN")
	}
	key, secret, err := s.createKey(ctx, req.GetTenantId(), req.GetDisplayName(), req.GetScope())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.CreateApiKeyResponse{ApiKey: key, Secret: secret}, nil
}

// ListApiKeys pages through a tenant's keys, newest first, without secrets
// (an ADMIN caller that may act for the tenant, see requireKeyAdmin).
func (s *Service) ListApiKeys(ctx context.Context, req *crowdgatev1.ListApiKeysRequest) (*crowdgatev1.ListApiKeysResponse, error) {
	if err := s.requireKeyAdmin(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	keys, next, err := s.listKeys(ctx, req.GetTenantId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListApiKeysResponse{ApiKeys: keys, NextPageToken: next}, nil
}

// RevokeApiKey revokes a key: the next call with it is refused, on every
// replica (an ADMIN caller that may act for the key's tenant: another
// tenant's key is NOT_FOUND to a tenant's ADMIN key). Revoking a revoked
// key keeps its first revoke_time.
func (s *Service) RevokeApiKey(ctx context.Context, req *crowdgatev1.RevokeApiKeyRequest) (*crowdgatev1.RevokeApiKeyResponse, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetApiKeyId() == "" {
		return nil, serviceerror.NewInvalidArgument("api_key_id", "required")
	}
	key, err := s.getKey(ctx, req.GetApiKeyId())
	if err != nil {
		return nil, err
	}
	if !p.MayActFor(key.GetTenantId()) {
		return nil, &serviceerror.NotFound{Resource: "api key", ID: req.GetApiKeyId()}
	}
	if key, err = s.revokeKey(ctx, key.GetApiKeyId()); err != nil {
		return nil, err
	}
	return &crowdgatev1.RevokeApiKeyResponse{ApiKey: key}, nil
}

// ListAuditEvents pages through the caller's tenant's audit events, newest
// first; a cross-tenant caller (the bootstrap admin) that names no tenant
// sees every tenant's. A tenant's key only ever sees its own tenant's.
func (s *Service) ListAuditEvents(ctx context.Context, req *crowdgatev1.ListAuditEventsRequest) (*crowdgatev1.ListAuditEventsResponse, error) {
	p, ok := PrincipalFromContext(ctx)
	if !ok {
		return nil, errNoCredentials
	}
	all := p.AllTenants && p.CrossTenant()
	evs, next, err := s.listAudit(ctx, p.Tenant, all, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListAuditEventsResponse{Events: evs, NextPageToken: next}, nil
}

// requireAdmin refuses callers without the ADMIN scope and returns the
// caller. Unary checks the scope already; the check here keeps the service
// safe however it is wired.
func requireAdmin(ctx context.Context) (*Principal, error) {
	p, ok := PrincipalFromContext(ctx)
	if !ok {
		return nil, errNoCredentials
	}
	if p.Scope != crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN {
		return nil, &serviceerror.PermissionDenied{Message: "needs an ADMIN key"}
	}
	return p, nil
}

// requirePlatformAdmin admits the platform's administrator only: an ADMIN
// caller that acts across tenants (the bootstrap admin key; with
// authentication off, the anonymous caller). A tenant's ADMIN key is not
// one: it manages its own tenant's keys, not tenants.
func requirePlatformAdmin(ctx context.Context) error {
	p, err := requireAdmin(ctx)
	if err != nil {
		return err
	}
	if !p.CrossTenant() {
		return &serviceerror.PermissionDenied{Message: "only the platform's administrator manages tenants; a tenant's ADMIN key manages its own tenant's keys"}
	}
	return nil
}

// requireKeyAdmin admits an ADMIN caller to tenantID's keys: the platform's
// administrator to any existing tenant's, a tenant's ADMIN key to its own
// tenant's only. Another tenant is NOT_FOUND, as an unknown one is, like
// any record of another tenant.
func (s *Service) requireKeyAdmin(ctx context.Context, tenantID string) error {
	p, err := requireAdmin(ctx)
	if err != nil {
		return err
	}
	if tenantID != "" && !p.MayActFor(tenantID) {
		return &serviceerror.NotFound{Resource: "tenant", ID: tenantID}
	}
	return s.checkTenant(ctx, tenantID)
}

// checkTenant validates a request's tenant_id: required, and existing.
func (s *Service) checkTenant(ctx context.Context, id string) error {
	if id == "" {
		return serviceerror.NewInvalidArgument("tenant_id", "required")
	}
	ok, err := s.tenantExists(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return &serviceerror.NotFound{Resource: "tenant", ID: id}
	}
	return nil
}

func checkDisplayName(name string) error {
	switch n := utf8.RuneCountInString(name); {
	case n == 0:
		return serviceerror.NewInvalidArgument("display_name", "required")
	case n > maxDisplayName:
		return serviceerror.NewInvalidArgument("display_name", "at most %d characters", maxDisplayName)
	}
	return nil
}

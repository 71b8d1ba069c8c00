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

// CreateTenant adds a tenant (admin).
func (s *Service) CreateTenant(ctx context.Context, req *crowdgatev1.CreateTenantRequest) (*crowdgatev1.CreateTenantResponse, error) {
	if err := requireAdmin(ctx); err != nil {
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

// ListTenants pages through tenants, newest first (admin).
func (s *Service) ListTenants(ctx context.Context, req *crowdgatev1.ListTenantsRequest) (*crowdgatev1.ListTenantsResponse, error) {
	if err := requireAdmin(ctx); err != nil {
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
// (admin).
func (s *Service) CreateApiKey(ctx context.Context, req *crowdgatev1.CreateApiKeyRequest) (*crowdgatev1.CreateApiKeyResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.checkTenant(ctx, req.GetTenantId()); err != nil {
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
// (admin).
func (s *Service) ListApiKeys(ctx context.Context, req *crowdgatev1.ListApiKeysRequest) (*crowdgatev1.ListApiKeysResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := s.checkTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	keys, next, err := s.listKeys(ctx, req.GetTenantId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListApiKeysResponse{ApiKeys: keys, NextPageToken: next}, nil
}

// RevokeApiKey revokes a key: the next call with it is refused, on every
// replica (admin). Revoking a revoked key keeps its first revoke_time.
func (s *Service) RevokeApiKey(ctx context.Context, req *crowdgatev1.RevokeApiKeyRequest) (*crowdgatev1.RevokeApiKeyResponse, error) {
	if err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if req.GetApiKeyId() == "" {
		return nil, serviceerror.NewInvalidArgument("api_key_id", "required")
	}
	key, err := s.revokeKey(ctx, req.GetApiKeyId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.RevokeApiKeyResponse{ApiKey: key}, nil
}

// ListAuditEvents pages through the caller's tenant's audit events, newest
// first; an administrator that names no tenant sees every tenant's.
func (s *Service) ListAuditEvents(ctx context.Context, req *crowdgatev1.ListAuditEventsRequest) (*crowdgatev1.ListAuditEventsResponse, error) {
	p, ok := PrincipalFromContext(ctx)
	if !ok {
		return nil, errNoCredentials
	}
	evs, next, err := s.listAudit(ctx, p.Tenant, p.AllTenants, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListAuditEventsResponse{Events: evs, NextPageToken: next}, nil
}

// requireAdmin refuses callers without the ADMIN scope. Unary checks this
// already; the check here keeps the service safe however it is wired.
func requireAdmin(ctx context.Context) error {
	p, ok := PrincipalFromContext(ctx)
	if !ok {
		return errNoCredentials
	}
	if p.Scope != crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN {
		return &serviceerror.PermissionDenied{Message: "needs an ADMIN key"}
	}
	return nil
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

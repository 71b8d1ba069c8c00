package access

import (
	"strings"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// Need is the least a caller must hold to call a method.
type Need int

const (
	// NeedRead is any key of the tenant (Get* and List* methods).
	NeedRead Need = iota + 1
	// NeedWrite is a WRITE or ADMIN key, or an internal service.
	NeedWrite
	// NeedAdmin is an ADMIN key (its own tenant's keys only) or the
	// bootstrap admin key (every tenant's keys, and tenants); see
	// Principal.CrossTenant.
	NeedAdmin
)

func (n Need) String() string {
	switch n {
	case NeedRead:
		return "READ"
	case NeedWrite:
		return "WRITE"
	case NeedAdmin:
		return "ADMIN"
	}
	return "UNKNOWN"
}

// adminMethods manage tenants and keys. The scope check lets any ADMIN
// caller in; the handlers then keep a tenant's ADMIN key to its own
// tenant's keys (requireKeyAdmin) and tenants to the platform's
// administrator (requirePlatformAdmin).
var adminMethods = map[string]bool{
	crowdgatev1.AccessService_CreateTenant_FullMethodName: true,
	crowdgatev1.AccessService_ListTenants_FullMethodName:  true,
	crowdgatev1.AccessService_CreateApiKey_FullMethodName: true,
	crowdgatev1.AccessService_ListApiKeys_FullMethodName:  true,
	crowdgatev1.AccessService_RevokeApiKey_FullMethodName: true,
	// Webhook endpoints decide where a tenant's events (and the data in
	// them) are sent: ADMIN, of the tenant's own endpoints only (every
	// store reads inside the caller's tenant).
	crowdgatev1.WebhookService_CreateWebhookEndpoint_FullMethodName:  true,
	crowdgatev1.WebhookService_UpdateWebhookEndpoint_FullMethodName:  true,
	crowdgatev1.WebhookService_DeleteWebhookEndpoint_FullMethodName:  true,
	crowdgatev1.WebhookService_RotateWebhookSecret_FullMethodName:    true,
	crowdgatev1.WebhookService_RedeliverWebhookEvent_FullMethodName:  true,
	crowdgatev1.WebhookService_RedeliverWebhookEvents_FullMethodName: true,
	// An endpoint's URL may carry a secret of its own (a capability URL:
	// Slack's, Zapier's, a token in the path or query), so reading
	// endpoints is ADMIN too.
	crowdgatev1.WebhookService_GetWebhookEndpoint_FullMethodName:   true,
	crowdgatev1.WebhookService_ListWebhookEndpoints_FullMethodName: true,
}

// platformReads are reads that belong to the partner platform's side of
// the flow (StartSession, ExchangeCode, Submit, GetSession, EndSession), so
// they need the platform's WRITE key like the rest of that side.
var platformReads = map[string]bool{
	crowdgatev1.SessionService_GetSession_FullMethodName: true,
	// A pool's live sessions are GetSession's records in bulk.
	crowdgatev1.ExportService_ExportSessions_FullMethodName: true,
}

// methodName returns "OpenPool" of "/crowdgate.v1.PoolService/OpenPool".
func methodName(fullMethod string) string {
	return fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
}

// IsRead reports whether a method only reads: its name starts with Get,
// List, Watch or Export (the ExportService's streams, which read what the
// List methods do). Every other method (including any added later) counts
// as a state change: it needs a WRITE key and is audited.
func IsRead(fullMethod string) bool {
	m := methodName(fullMethod)
	return strings.HasPrefix(m, "Get") || strings.HasPrefix(m, "List") || strings.HasPrefix(m, "Watch") || strings.HasPrefix(m, "Export")
}

// Required returns what a caller must hold to call fullMethod.
func Required(fullMethod string) Need {
	switch {
	case adminMethods[fullMethod]:
		return NeedAdmin
	case platformReads[fullMethod]:
		return NeedWrite
	case IsRead(fullMethod):
		return NeedRead
	default:
		return NeedWrite
	}
}

// allows reports whether scope satisfies need.
func allows(scope crowdgatev1.ApiKeyScope, need Need) bool {
	switch scope {
	case crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN:
		return true
	case crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE:
		return need == NeedRead || need == NeedWrite
	case crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ:
		return need == NeedRead
	}
	return false
}

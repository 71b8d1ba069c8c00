package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
)

// TenantHeader is the gRPC metadata key that names the tenant a call acts
// for. Over REST it is the HTTP header X-Crowdgate-Tenant
// (RESTTenantHeader), which the REST gateway forwards as this key: one
// name on both protocols. Internal services must send it; the bootstrap
// admin may, to act for any tenant; a tenant's API key may only name its
// own tenant (see Principal.CrossTenant).
const TenantHeader = "x-crowdgate-tenant"

// RESTTenantHeader is TenantHeader over REST, as an HTTP header.
const RESTTenantHeader = "X-Crowdgate-Tenant"

// MisnamedTenantHeader is the gRPC metadata key the REST gateway forwards
// the HTTP header Grpc-Metadata-X-Crowdgate-Tenant as (grpc-gateway's
// prefix for headers meant as metadata, which this gateway does not
// honour). A call carrying it is refused with INVALID_ARGUMENT naming
// X-Crowdgate-Tenant, rather than silently acting for the caller's own or
// the default tenant.
const MisnamedTenantHeader = "grpcgateway-grpc-metadata-x-crowdgate-tenant"

// errMisnamedTenantHeader refuses a call carrying MisnamedTenantHeader.
var errMisnamedTenantHeader = serviceerror.NewInvalidArgument("Grpc-Metadata-"+RESTTenantHeader,
	"is not read: name the tenant in the %s header (gRPC metadata %s)", RESTTenantHeader, TenantHeader)

// Kind is the kind of an authenticated caller.
type Kind string

// Kinds of callers.
const (
	// KindAPIKey is a partner API key.
	KindAPIKey Kind = "api_key"
	// KindAdmin is the bootstrap admin key.
	KindAdmin Kind = "admin"
	// KindService is an internal service (a service token or a client
	// certificate).
	KindService Kind = "service"
	// KindAnonymous is any caller while authentication is off.
	KindAnonymous Kind = "anonymous"
)

// Principal is an authenticated caller and the tenant its call acts for.
type Principal struct {
	// Kind is what authenticated the caller.
	Kind Kind
	// Actor names the caller in the audit log: the API key id, "admin",
	// "service:<name>" or "anonymous".
	Actor string
	// Scope is what the caller may do. Internal services hold WRITE.
	Scope crowdgatev1.ApiKeyScope
	// Tenant is the tenant the call acts for (also in tenant.FromContext).
	// A tenant's API key always acts for its own.
	Tenant string
	// AllTenants is set for a cross-tenant caller (CrossTenant) that named
	// no tenant: its ListAuditEvents sees every tenant's events.
	AllTenants bool
}

// CrossTenant reports whether p acts across tenants. This is the one place
// that decides it: only the bootstrap admin key and internal services
// (service tokens, client certificates) do, and, with authentication off,
// the anonymous caller. A cross-tenant caller may name any tenant in
// TenantHeader and, naming none, reads every tenant's audit log; with the
// ADMIN scope (the bootstrap admin, the anonymous caller) it also manages
// tenants and every tenant's keys. A tenant's API key, whatever its scope,
// acts for its own tenant only.
func (p *Principal) CrossTenant() bool {
	switch p.Kind {
	case KindAdmin, KindService, KindAnonymous:
		return true
	}
	return false
}

// MayActFor reports whether p may act for tenantID: a cross-tenant caller
// for any tenant, a tenant's API key for its own only.
func (p *Principal) MayActFor(tenantID string) bool {
	return p.CrossTenant() || tenantID == p.Tenant
}

type principalKey struct{}

// PrincipalFromContext returns the caller Unary authenticated.
func PrincipalFromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p and acting for p.Tenant. Unary does
// this for every call; tests of other packages may use it directly.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return tenant.WithID(context.WithValue(ctx, principalKey{}, p), p.Tenant)
}

// Unary is the gRPC interceptor that authenticates every Crowdgate RPC,
// checks the caller's scope, puts the caller's tenant in the context and
// records state-changing calls in the audit log. It returns domain errors
// (serviceerror.Unauthenticated, PermissionDenied): the gateway converts
// them to gRPC status after it.
func (s *Service) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	p, err := s.authenticate(ctx)
	if err != nil {
		s.authTotal.WithLabelValues("none", resultLabel(err)).Inc()
		return nil, err
	}
	if need := Required(info.FullMethod); !allows(p.Scope, need) {
		s.authTotal.WithLabelValues(string(p.Kind), "permission_denied").Inc()
		err := &serviceerror.PermissionDenied{Message: methodName(info.FullMethod) + " needs a " + need.String() + " key"}
		s.audit(ctx, p, info.FullMethod, req, nil, err)
		return nil, err
	}
	s.authTotal.WithLabelValues(string(p.Kind), "ok").Inc()
	ctx = WithPrincipal(ctx, p)
	resp, err := handler(ctx, req)
	if !IsRead(info.FullMethod) {
		s.audit(ctx, p, info.FullMethod, req, resp, err)
	}
	return resp, err
}

// resultLabel names a refusal for the auth metric.
func resultLabel(err error) string {
	var ua *serviceerror.Unauthenticated
	var pd *serviceerror.PermissionDenied
	switch {
	case errors.As(err, &ua):
		return "unauthenticated"
	case errors.As(err, &pd):
		return "permission_denied"
	}
	return "error"
}

var errNoCredentials = &serviceerror.Unauthenticated{Message: "credentials required: send \"authorization: Bearer <API key>\""}

// authenticate finds out who calls and for which tenant.
func (s *Service) authenticate(ctx context.Context) (*Principal, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(MisnamedTenantHeader)) > 0 {
		return nil, errMisnamedTenantHeader
	}
	tenants := md.Get(TenantHeader)
	if len(tenants) > 1 {
		return nil, serviceerror.NewInvalidArgument(TenantHeader, "at most one value")
	}
	named := ""
	if len(tenants) == 1 {
		named = strings.TrimSpace(tenants[0])
	}

	if s.mode == ModeOff {
		p := &Principal{Kind: KindAnonymous, Actor: "anonymous", Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN, Tenant: tenant.Default, AllTenants: named == ""}
		if named != "" {
			if !validTenantID(named) {
				return nil, serviceerror.NewInvalidArgument(TenantHeader, "not a tenant id")
			}
			p.Tenant = named
		}
		return p, nil
	}

	p, err := s.identify(ctx, md)
	if err != nil {
		return nil, err
	}
	return p, s.actFor(ctx, p, named)
}

// identify authenticates the caller's credentials, without choosing the
// tenant yet.
func (s *Service) identify(ctx context.Context, md metadata.MD) (*Principal, error) {
	auths := md.Get("authorization")
	if len(auths) == 0 {
		if s.certs {
			if name := peerService(ctx); name != "" {
				return &Principal{Kind: KindService, Actor: "service:" + name, Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE}, nil
			}
		}
		return nil, errNoCredentials
	}
	if len(auths) > 1 {
		return nil, errBadCredentials
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(auths[0]), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return nil, errBadCredentials
	}

	// In-memory secrets first (constant time, every one compared).
	sum := sha256.Sum256([]byte(token))
	if s.admin != nil && subtle.ConstantTimeCompare(sum[:], s.admin) == 1 {
		return &Principal{Kind: KindAdmin, Actor: "admin", Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN, Tenant: tenant.Default}, nil
	}
	service := ""
	for name, h := range s.services {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			service = name
		}
	}
	if service != "" {
		return &Principal{Kind: KindService, Actor: "service:" + service, Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE}, nil
	}

	id, rec, err := s.lookupKey(ctx, token)
	if err != nil {
		return nil, err
	}
	s.touchKey(ctx, id, rec)
	return &Principal{Kind: KindAPIKey, Actor: id, Scope: rec.scope, Tenant: rec.tenant}, nil
}

// actFor sets the tenant the call acts for: an internal service names it
// (required); the bootstrap admin may name any (without one, it acts for
// the default tenant and its audit log shows every tenant's); a tenant's
// API key, whatever its scope, acts for its own tenant only.
func (s *Service) actFor(ctx context.Context, p *Principal, named string) error {
	switch {
	case p.Kind == KindService && named == "":
		return &serviceerror.PermissionDenied{Message: "an internal service must name the tenant it acts for in " + TenantHeader}
	case named == "":
		p.AllTenants = p.CrossTenant()
		return nil
	case !p.MayActFor(named):
		return &serviceerror.PermissionDenied{Message: "this key acts only for its own tenant: it may not name another in " + RESTTenantHeader}
	}
	ok, err := s.tenantExists(ctx, named)
	if err != nil {
		return err
	}
	if !ok {
		return &serviceerror.PermissionDenied{Message: "no such tenant: " + TenantHeader}
	}
	p.Tenant = named
	return nil
}

// peerService returns the service name of a verified client certificate:
// its first DNS name, or its common name. Empty when the connection has
// none (the REST gateway's loopback connection never has one).
func peerService(ctx context.Context) string {
	pr, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	ti, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return ""
	}
	leaf := ti.State.VerifiedChains[0][0]
	name := leaf.Subject.CommonName
	if len(leaf.DNSNames) > 0 {
		name = leaf.DNSNames[0]
	}
	if checkServiceName(name) != nil {
		return ""
	}
	return name
}

// Stream authenticates a server stream (WatchEvents) as Unary does a call:
// the same credentials, scope check and tenant in the stream's context.
// Streams only read, so nothing is audited. The credentials are checked
// again before the stream sends a message once StreamRecheck has passed
// since the last check, so a key revoked (or a token expired) while its
// stream is open gets nothing made more than StreamRecheck after: the
// stream ends with UNAUTHENTICATED, as the next call with the key would.
// (Checked before every message, an export of a million rows read the
// key a million times.)
func (s *Service) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	p, err := s.authenticate(ctx)
	if err != nil {
		s.authTotal.WithLabelValues("none", resultLabel(err)).Inc()
		return err
	}
	if need := Required(info.FullMethod); !allows(p.Scope, need) {
		s.authTotal.WithLabelValues(string(p.Kind), "permission_denied").Inc()
		return &serviceerror.PermissionDenied{Message: methodName(info.FullMethod) + " needs a " + need.String() + " key"}
	}
	s.authTotal.WithLabelValues(string(p.Kind), "ok").Inc()
	recheck := func() error {
		_, err := s.authenticate(ctx)
		if err != nil {
			s.authTotal.WithLabelValues(string(p.Kind), resultLabel(err)).Inc()
		}
		return err
	}
	return handler(srv, &principalStream{ServerStream: ss, ctx: WithPrincipal(ctx, p), recheck: recheck,
		now: s.now, next: s.now().Add(StreamRecheck)})
}

// StreamRecheck is how often an open stream's credentials are checked
// again, at most: before a message, once this long has passed since the
// last check.
const StreamRecheck = time.Second

// principalStream is a server stream whose context carries the caller,
// and whose messages are sent only while the caller's credentials still
// hold (checked again every StreamRecheck).
type principalStream struct {
	grpc.ServerStream
	ctx     context.Context
	recheck func() error
	now     func() time.Time
	next    time.Time // when the credentials are next checked
}

func (s *principalStream) Context() context.Context { return s.ctx }

// SendMsg sends m if the caller's credentials still hold, and returns
// their error otherwise.
func (s *principalStream) SendMsg(m any) error {
	if now := s.now(); !now.Before(s.next) {
		if err := s.recheck(); err != nil {
			return err
		}
		s.next = now.Add(StreamRecheck)
	}
	return s.ServerStream.SendMsg(m)
}

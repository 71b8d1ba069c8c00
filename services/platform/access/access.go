// Package access decides who may call what in Crowdgate: tenants (requester
// organisations), their API keys, internal service identities, and the audit
// log of state-changing calls.
//
// Every Crowdgate RPC (REST included: REST reaches the handlers through the
// gRPC server) passes Service.Unary, which
//
//   - authenticates the caller: a partner API key ("Authorization: Bearer
//     cgk_..."), the bootstrap admin key, an internal service token, or an
//     internal service's client certificate (mutual TLS);
//   - checks the key's scope against the method (READ: Get*/List*; WRITE:
//     everything of its tenant except key management; ADMIN: also its
//     tenant's keys);
//   - decides the tenant the call acts for: the key's own, or the one named
//     in the tenant header, which has one name on both protocols: the gRPC
//     metadata key x-crowdgate-tenant (TenantHeader), and over REST the
//     HTTP header X-Crowdgate-Tenant (RESTTenantHeader), which the REST
//     gateway forwards as that metadata key. grpc-gateway's
//     Grpc-Metadata-X-Crowdgate-Tenant is not a second name: a call sending
//     it is refused with INVALID_ARGUMENT naming X-Crowdgate-Tenant;
//   - puts that tenant in the context with tenant.WithID, which is what
//     makes every store read and write inside that tenant only, so a
//     foreign tenant's record is NOT_FOUND;
//   - records every state-changing call in the audit log.
//
// Who acts across tenants is decided in one place, Principal.CrossTenant:
// only the bootstrap admin key and internal services (service tokens,
// client certificates) do. They may name any tenant in the tenant header
// (internal services must); the bootstrap admin alone manages tenants
// (CreateTenant, ListTenants), manages every tenant's keys and, naming no
// tenant, reads every tenant's audit log. A tenant's API key, whatever its
// scope, acts for its own tenant only: naming another tenant is
// PERMISSION_DENIED, another tenant's tenant_id or key is NOT_FOUND, and
// its audit log is its tenant's. A tenant's ADMIN key is a WRITE key that
// also creates, lists and revokes its own tenant's keys.
//
// With Mode Off nothing is authenticated: every call acts as an anonymous
// administrator of the default tenant, or of the tenant it names, and may
// manage tenants (local demos and tests only).
package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Mode says whether callers must authenticate.
type Mode string

const (
	// ModeOff authenticates nobody: every call acts as an anonymous
	// administrator of the default tenant (or of the tenant named in
	// x-crowdgate-tenant). For local demos and tests only.
	ModeOff Mode = "off"
	// ModeKeys requires credentials on every call: an API key, the admin
	// key, a service token or a service client certificate.
	ModeKeys Mode = "keys"
)

// ParseMode reads a Mode ("off" or "keys").
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOff, ModeKeys:
		return m, nil
	}
	return "", fmt.Errorf("want off or keys, got %q", s)
}

// Defaults of Config's zero fields.
const (
	// DefaultAuditRetention is how long audit events are kept.
	DefaultAuditRetention = 90 * 24 * time.Hour
	// DefaultAuditMaxEvents is how many events are kept per tenant.
	DefaultAuditMaxEvents = 50000
	// LastUsedResolution is how stale a key's last_used_time may be: it is
	// written at most once per this interval per key.
	LastUsedResolution = time.Minute
	// MinSecretLength is the shortest admin key or service token accepted.
	MinSecretLength = 32
)

// Config is what the service is built from.
type Config struct {
	// Redis keeps tenants, keys and the audit log.
	Redis redis.UniversalClient
	// Prefix starts every key written (the gateway's Redis prefix).
	Prefix string
	// Mode is ModeOff or ModeKeys (ModeOff when empty).
	Mode Mode
	// AdminKey, when set, is the bootstrap secret of the platform's
	// administrator (actor "admin"): the ADMIN scope across every tenant
	// (see Principal.CrossTenant). Only its SHA-256 is kept. At least
	// MinSecretLength long.
	AdminKey string
	// ServiceTokens maps internal service names to their bearer tokens
	// (see ParseServiceTokens). Only the tokens' SHA-256 are kept.
	ServiceTokens map[string]string
	// TrustClientCerts makes a verified client certificate (mutual TLS, see
	// TLSFiles) authenticate an internal service named by the
	// certificate's first DNS name or, without one, its common name.
	TrustClientCerts bool
	// AuditRetention bounds the age of audit events (DefaultAuditRetention
	// when zero).
	AuditRetention time.Duration
	// AuditMaxEvents bounds the events kept per tenant
	// (DefaultAuditMaxEvents when zero); the administrators' view of all
	// tenants keeps ten times as many.
	AuditMaxEvents int64
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Log receives warnings (never a secret).
	Log *slog.Logger
	// Metrics, when set, receives the auth and audit counters.
	Metrics prometheus.Registerer
}

// Service implements crowdgatev1.AccessServiceServer and the authentication
// interceptor (Unary).
type Service struct {
	crowdgatev1.UnimplementedAccessServiceServer

	rdb redis.UniversalClient
	// audits sends the audit entries of concurrent calls in shared
	// pipelines.
	audits   *storage.GroupCommit[storage.Commands]
	prefix   string
	mode     Mode
	now      func() time.Time
	log      *slog.Logger
	admin    []byte            // SHA-256 of the admin key, nil when none
	services map[string][]byte // service name -> SHA-256 of its token
	certs    bool

	tenants *storage.Store[*crowdgatev1.Tenant]
	known   sync.Map // tenant ids known to exist (tenants are never deleted)

	auditAge time.Duration
	auditMax int64
	// trimmed holds, by audit stream, when this replica last trimmed it to
	// the retention and renewed its TTL (at most every auditTrimEvery).
	trimMu  sync.Mutex
	trimmed map[string]time.Time

	authTotal    *prometheus.CounterVec
	auditFailure prometheus.Counter
}

// New returns the access service. It fails on a configuration it cannot
// use safely (a short admin key or service token, an unknown mode).
func New(cfg Config) (*Service, error) {
	if cfg.Redis == nil {
		return nil, errors.New("access: Config.Redis is required")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeOff
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		return nil, fmt.Errorf("access: mode: %w", err)
	}
	s := &Service{
		rdb:      cfg.Redis,
		audits:   storage.NewPipelineCommit(cfg.Redis),
		prefix:   cfg.Prefix + "access:",
		mode:     cfg.Mode,
		now:      cfg.Now,
		log:      cfg.Log,
		services: map[string][]byte{},
		certs:    cfg.TrustClientCerts,
		auditAge: cfg.AuditRetention,
		auditMax: cfg.AuditMaxEvents,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.auditAge <= 0 {
		s.auditAge = DefaultAuditRetention
	}
	if s.auditMax <= 0 {
		s.auditMax = DefaultAuditMaxEvents
	}
	if cfg.AdminKey != "" {
		if len(cfg.AdminKey) < MinSecretLength {
			return nil, fmt.Errorf("access: the admin key must be at least %d characters", MinSecretLength)
		}
		h := sha256.Sum256([]byte(cfg.AdminKey))
		s.admin = h[:]
	}
	for name, token := range cfg.ServiceTokens {
		if err := checkServiceName(name); err != nil {
			return nil, fmt.Errorf("access: service token: %w", err)
		}
		if len(token) < MinSecretLength {
			return nil, fmt.Errorf("access: the token of service %q must be at least %d characters", name, MinSecretLength)
		}
		h := sha256.Sum256([]byte(token))
		if s.admin != nil && bytes.Equal(h[:], s.admin) {
			return nil, fmt.Errorf("access: service %q has the admin key as its token", name)
		}
		s.services[name] = h[:]
	}
	s.tenants = storage.NewStore(cfg.Redis, s.prefix, "tenant", func() *crowdgatev1.Tenant { return new(crowdgatev1.Tenant) })
	s.authTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crowdgate_auth_requests_total",
		Help: "Authentication decisions on Crowdgate RPCs, by caller kind and result (ok, unauthenticated, permission_denied).",
	}, []string{"kind", "result"})
	s.auditFailure = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crowdgate_audit_write_failures_total",
		Help: "State-changing calls whose audit event could not be written.",
	})
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(s.authTotal); err != nil {
			return nil, fmt.Errorf("access: metrics: %w", err)
		}
		if err := cfg.Metrics.Register(s.auditFailure); err != nil {
			return nil, fmt.Errorf("access: metrics: %w", err)
		}
	}
	return s, nil
}

// Mode is the service's authentication mode.
func (s *Service) Mode() Mode { return s.mode }

// HasAdmin reports whether a bootstrap admin key is configured.
func (s *Service) HasAdmin() bool { return s.admin != nil }

// EnsureDefaultTenant creates the tenant every call acted for before
// authentication existed (tenant.Default), so its data stays reachable by
// giving it keys. Calling it again changes nothing.
func (s *Service) EnsureDefaultTenant(ctx context.Context) error {
	err := s.tenants.Create(ctx, globalOwner, tenant.Default, &crowdgatev1.Tenant{
		TenantId:    tenant.Default,
		DisplayName: "Default",
		CreateTime:  timestamp(s.now()),
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return err
	}
	s.known.Store(tenant.Default, true)
	return nil
}

// globalOwner is the protostore "tenant" that owns the tenant records
// themselves (they belong to the platform, not to a tenant).
const globalOwner = "_platform"

// tenantExists reports whether a tenant exists. Tenants are never deleted,
// so a positive answer is cached.
func (s *Service) tenantExists(ctx context.Context, id string) (bool, error) {
	if !validTenantID(id) {
		return false, nil
	}
	if _, ok := s.known.Load(id); ok {
		return true, nil
	}
	_, err := s.tenants.Get(ctx, globalOwner, id)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.known.Store(id, true)
	return true, nil
}

// validTenantID accepts the ids tenants are given (tenant.Default and
// protostore ids): short, and free of characters that mean something in a
// Redis key.
func validTenantID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

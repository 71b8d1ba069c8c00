package access

import (
	"fmt"
	"time"

	"github.com/crowdgate/crowdgate/services/platform/settings"
)

// Settings are the operator's access settings: who must authenticate, the
// bootstrap admin secret, internal services' tokens, and gRPC's TLS.
type Settings struct {
	// Auth is "off" (nobody authenticates: local demos and tests) or "keys".
	Auth string
	// AdminKey is the bootstrap admin secret; only its hash is kept.
	AdminKey string
	// ServiceTokens are internal services' bearer tokens: "name=token"
	// pairs, or "@/path/to/file" holding them.
	ServiceTokens string
	// TLS are gRPC's certificate, key and client CA (PEM files).
	TLS TLSFiles
	// AuditRetention bounds the age of audit events.
	AuditRetention time.Duration
}

// List returns the settings as configuration entries.
func (s *Settings) List() []settings.Setting {
	return []settings.Setting{
		settings.New("auth", "CROWDGATE_AUTH", "", "who must authenticate: off (empty: nobody, local demos and tests only) or keys (API keys, the admin key, service tokens or client certificates)", settings.String(&s.Auth)),
		settings.New("admin-key", "CROWDGATE_ADMIN_KEY", "", "bootstrap admin secret (ADMIN scope, at least 32 characters; openssl rand -hex 32); give it by environment, not flag", settings.Secret(&s.AdminKey)),
		settings.New("service-tokens", "CROWDGATE_SERVICE_TOKENS", "", "internal services' bearer tokens: name=token pairs separated by commas, or @/path/to/file with one pair a line", settings.Secret(&s.ServiceTokens)),
		settings.New("grpc-tls-cert", "CROWDGATE_GRPC_TLS_CERT", "", "PEM certificate of the gRPC server; with -grpc-tls-key, gRPC is served over TLS", settings.String(&s.TLS.Cert)),
		settings.New("grpc-tls-key", "CROWDGATE_GRPC_TLS_KEY", "", "PEM private key of the gRPC server", settings.String(&s.TLS.Key)),
		settings.New("audit-retention", "CROWDGATE_AUDIT_RETENTION", "2160h", "how long audit events are kept (at most 50,000 a tenant)", settings.Duration(&s.AuditRetention)),
		settings.New("grpc-client-ca", "CROWDGATE_GRPC_CLIENT_CA", "", "PEM CA whose client certificates authenticate internal services over mutual TLS (service name: the certificate's first DNS name, else its CN)", settings.String(&s.TLS.ClientCA)),
	}
}

// Config returns the service configuration the settings ask for (less
// Redis, logs and metrics). Errors name the environment variable at fault
// and never contain a secret.
func (s *Settings) Config() (Config, error) {
	mode := ModeOff
	if s.Auth != "" {
		m, err := ParseMode(s.Auth)
		if err != nil {
			return Config{}, fmt.Errorf("CROWDGATE_AUTH: %w", err)
		}
		mode = m
	}
	if s.AdminKey != "" && len(s.AdminKey) < MinSecretLength {
		return Config{}, fmt.Errorf("CROWDGATE_ADMIN_KEY: want at least %d characters (openssl rand -hex 32)", MinSecretLength)
	}
	tokens, err := ParseServiceTokens(s.ServiceTokens)
	if err != nil {
		return Config{}, fmt.Errorf("CROWDGATE_SERVICE_TOKENS: %w", err)
	}
	if s.AuditRetention < 0 {
		return Config{}, fmt.Errorf("CROWDGATE_AUDIT_RETENTION: want a positive duration, got %s", s.AuditRetention)
	}
	if err := s.TLS.Validate(); err != nil {
		return Config{}, fmt.Errorf("CROWDGATE_GRPC_TLS_CERT/KEY, CROWDGATE_GRPC_CLIENT_CA: %w", err)
	}
	return Config{
		Mode:             mode,
		AdminKey:         s.AdminKey,
		ServiceTokens:    tokens,
		TrustClientCerts: s.TLS.ClientCA != "",
		AuditRetention:   s.AuditRetention,
	}, nil
}

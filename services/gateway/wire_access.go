package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/access"
)

// wireAccess builds tenants, API keys, the audit log and the interceptor
// that authenticates every Crowdgate RPC.
//
// Authentication is off by default: `make run` is a local demo and the
// other capabilities' tests call RPCs without credentials. Off means every
// caller is an anonymous administrator, so the gateway says so loudly when
// it runs against a real Redis (REDIS_URL set), which is what a deployment
// does. Production sets CROWDGATE_AUTH=keys.
func wireAccess(d *deps) error {
	cfg, err := d.cfg.accessConfig()
	if err != nil {
		return err
	}
	cfg.Redis, cfg.Prefix = d.redis, d.prefix
	cfg.Log, cfg.Metrics = d.log.With("component", "access"), d.metrics
	svc, err := access.New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.EnsureDefaultTenant(ctx); err != nil {
		return fmt.Errorf("access: create the default tenant: %w", err)
	}

	switch {
	case cfg.Mode == access.ModeOff && d.cfg.RedisURL != "":
		d.log.Warn("CROWDGATE_AUTH is off: ANYONE WHO CAN REACH THE PORTS CAN READ AND CHANGE EVERYTHING, as an administrator. " +
			"Set CROWDGATE_AUTH=keys (and CROWDGATE_ADMIN_KEY) anywhere but a local demo.")
	case cfg.Mode == access.ModeOff:
		d.log.Info("authentication is off (local demo): every call acts as an administrator of the default tenant")
	case !svc.HasAdmin():
		d.log.Info("no CROWDGATE_ADMIN_KEY: tenants and keys are managed with existing ADMIN keys only")
	}

	crowdgatev1.RegisterAccessServiceServer(d.grpc, svc)
	d.auth = svc.Unary
	return nil
}

// accessConfig reads the access settings (everything but Redis, logs and
// metrics). Errors name the environment variable at fault and never
// contain a secret.
func (c *Config) accessConfig() (access.Config, error) {
	mode := access.ModeOff
	if c.Auth != "" {
		m, err := access.ParseMode(c.Auth)
		if err != nil {
			return access.Config{}, fmt.Errorf("CROWDGATE_AUTH: %w", err)
		}
		mode = m
	}
	if c.AdminKey != "" && len(c.AdminKey) < access.MinSecretLength {
		return access.Config{}, fmt.Errorf("CROWDGATE_ADMIN_KEY: want at least %d characters (openssl rand -hex 32)", access.MinSecretLength)
	}
	tokens, err := access.ParseServiceTokens(c.ServiceTokens)
	if err != nil {
		return access.Config{}, fmt.Errorf("CROWDGATE_SERVICE_TOKENS: %w", err)
	}
	tlsFiles := c.grpcTLS()
	if err := tlsFiles.Validate(); err != nil {
		return access.Config{}, fmt.Errorf("CROWDGATE_GRPC_TLS_CERT/KEY, CROWDGATE_GRPC_CLIENT_CA: %w", err)
	}
	return access.Config{
		Mode:             mode,
		AdminKey:         c.AdminKey,
		ServiceTokens:    tokens,
		TrustClientCerts: tlsFiles.ClientCA != "",
	}, nil
}

func (c *Config) grpcTLS() access.TLSFiles {
	return access.TLSFiles{Cert: c.GRPCTLSCert, Key: c.GRPCTLSKey, ClientCA: c.GRPCClientCA}
}

// GRPCServerOptions are the gRPC server options the access settings ask
// for: TLS, verifying internal services' client certificates when
// CROWDGATE_GRPC_CLIENT_CA is set. None when TLS is not configured.
// gateway.New passes them to grpc.NewServer.
func (c *Config) GRPCServerOptions() ([]grpc.ServerOption, error) {
	f := c.grpcTLS()
	if !f.Enabled() {
		return nil, nil
	}
	creds, err := f.ServerCredentials()
	if err != nil {
		return nil, fmt.Errorf("CROWDGATE_GRPC_TLS_CERT/KEY, CROWDGATE_GRPC_CLIENT_CA: %w", err)
	}
	return []grpc.ServerOption{grpc.Creds(creds)}, nil
}

// RESTLoopbackCredentials are the transport credentials of the REST
// gateway's own connection to the gRPC server: plaintext when gRPC is, and
// otherwise TLS pinned to the server's own certificate, without a client
// certificate (so a REST caller never borrows a service identity).
func (c *Config) RESTLoopbackCredentials() (credentials.TransportCredentials, error) {
	f := c.grpcTLS()
	if !f.Enabled() {
		return insecure.NewCredentials(), nil
	}
	return f.LoopbackCredentials()
}

// rejectInvalidUTF8 answers 400 to a REST request whose percent-decoded
// path or query is not UTF-8. Proto strings must be UTF-8, and grpc-gateway
// only finds out when it marshals the gRPC request, which it reports as
// INTERNAL (a 500): FuzzREST found GET /v1/pools/%FF doing that. gateway.go
// applies it in front of the REST mux.
func rejectInvalidUTF8(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !utf8.ValidString(r.URL.Path) || !validQueryUTF8(r.URL.RawQuery) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"code":3,"message":"invalid argument: the request path or query is not valid UTF-8","details":[]}`))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// validQueryUTF8 reports whether every key and value of a raw query is
// UTF-8 once decoded (the parts that do not parse are left to
// grpc-gateway, which refuses them with 400).
func validQueryUTF8(raw string) bool {
	q, _ := url.ParseQuery(raw)
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// restHeaderMatcher is grpc-gateway's default incoming header matcher plus
// X-Crowdgate-Tenant, forwarded as the tenant metadata, so administrators
// and internal services can name the tenant they act for over REST too
// (Service.Unary decides whether a caller may). gateway.go passes it to
// runtime.NewServeMux with runtime.WithIncomingHeaderMatcher.
func restHeaderMatcher(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == "X-Crowdgate-Tenant" {
		return access.TenantHeader, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// secretValue is a flag value that never shows its value (in -h output
// the default of a flag is its environment variable's value).
type secretValue string

func (v *secretValue) Set(s string) error { *v = secretValue(s); return nil }
func (v *secretValue) String() string {
	if v == nil || *v == "" {
		return ""
	}
	return "(set)"
}

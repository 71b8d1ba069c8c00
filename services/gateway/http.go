package gateway

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/access"
)

// GRPCServerOptions are the gRPC server options the access settings ask
// for: TLS, verifying internal services' client certificates when
// CROWDGATE_GRPC_CLIENT_CA is set. None when TLS is not configured.
// gateway.New passes them to grpc.NewServer.
func (c *Config) GRPCServerOptions() ([]grpc.ServerOption, error) {
	f := c.Access.TLS
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
	f := c.Access.TLS
	if !f.Enabled() {
		return insecure.NewCredentials(), nil
	}
	return f.LoopbackCredentials()
}

// rejectInvalidUTF8 answers 400 to a REST request whose percent-decoded
// path or query is not UTF-8. Proto strings must be UTF-8, and grpc-gateway
// only finds out when it marshals the gRPC request, which it reports as
// INTERNAL (a 500): FuzzREST found GET /v1/pools/%FF doing that. A query
// parameter is named in a BadRequest field violation, as every other
// INVALID_ARGUMENT is (a name that is not UTF-8 itself is named with
// U+FFFD for its bad bytes). gateway.go applies it in front of the REST
// mux.
func rejectInvalidUTF8(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !utf8.ValidString(r.URL.Path) {
			writeRESTError(w, http.StatusBadRequest, codes.InvalidArgument, "invalid argument: the request path is not valid UTF-8")
			return
		}
		if param, inName, bad := invalidQueryUTF8(r.URL.RawQuery); bad {
			reason := "is not valid UTF-8 once percent-decoded"
			if inName {
				reason = "the parameter's name is not valid UTF-8 once percent-decoded"
			}
			writeRESTStatus(w, http.StatusBadRequest, serviceerror.ToStatus(serviceerror.NewInvalidArgument(param, "%s", reason)))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// invalidQueryUTF8 finds the first parameter of a raw query whose name or
// value is not UTF-8 once decoded: its name (bad bytes as U+FFFD) and
// whether the name itself is the fault. It reads the query as
// url.ParseQuery does; the parts that do not parse are left to
// grpc-gateway, which refuses them with 400.
func invalidQueryUTF8(raw string) (param string, inName, bad bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" || strings.Contains(part, ";") {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		if !utf8.ValidString(key) {
			return strings.ToValidUTF8(key, "\uFFFD"), true, true
		}
		if val, err := url.QueryUnescape(v); err == nil && !utf8.ValidString(val) {
			return key, false, true
		}
	}
	return "", false, false
}

// restHeaderMatcher is grpc-gateway's default incoming header matcher plus
// the tenant header, so the tenant a call acts for has one name on both
// protocols: X-Crowdgate-Tenant over REST is forwarded as the gRPC metadata
// key x-crowdgate-tenant (Service.Unary decides whether the caller may name
// it). grpc-gateway's Grpc-Metadata-X-Crowdgate-Tenant, which the default
// matcher would drop silently (the call then acting for the caller's own
// or the default tenant), is forwarded as access.MisnamedTenantHeader
// instead, so the call is refused with 400 naming X-Crowdgate-Tenant.
// gateway.go passes it to runtime.NewServeMux with
// runtime.WithIncomingHeaderMatcher.
func restHeaderMatcher(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case access.RESTTenantHeader:
		return access.TenantHeader, true
	case runtime.MetadataHeaderPrefix + access.RESTTenantHeader:
		return access.MisnamedTenantHeader, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// restMethods are the methods a REST route may have.
var restMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// restAllow answers a REST request with a method its path does not take:
// 405 with Allow naming the methods that path does take (grpc-gateway's own
// answer is 501 UNIMPLEMENTED, without Allow). It finds them by asking a
// second grpc-gateway mux with the same registrations, whose routes a
// middleware stops before their handlers run: the REST mux's own routing,
// with no table to keep in step with the protos.
type restAllow struct {
	probe *runtime.ServeMux
}

// probeWriter records whether the probe mux found a route.
type probeWriter struct {
	header http.Header
	found  bool
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(int)             {}

// newRESTAllow registers every REST route on the probe mux; conn is never
// called.
func newRESTAllow(ctx context.Context, conn *grpc.ClientConn) (*restAllow, error) {
	found := func(runtime.HandlerFunc) runtime.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
			if p, ok := w.(*probeWriter); ok {
				p.found = true
			}
		}
	}
	ignore := func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, error) {
	}
	probe := runtime.NewServeMux(
		runtime.WithMiddlewares(found),
		runtime.WithErrorHandler(ignore),
		runtime.WithRoutingErrorHandler(func(context.Context, *runtime.ServeMux, runtime.Marshaler, http.ResponseWriter, *http.Request, int) {}),
	)
	for _, register := range restHandlers {
		if err := register(ctx, probe, conn); err != nil {
			return nil, fmt.Errorf("register REST route: %w", err)
		}
	}
	return &restAllow{probe: probe}, nil
}

// allowed returns the methods the path of r takes.
func (a *restAllow) allowed(r *http.Request) []string {
	var out []string
	for _, m := range restMethods {
		w := &probeWriter{header: http.Header{}}
		a.probe.ServeHTTP(w, (&http.Request{Method: m, URL: r.URL, Header: http.Header{}, Body: http.NoBody}).WithContext(r.Context()))
		if w.found {
			out = append(out, m)
			if m == http.MethodGet && !isExportPath(r.URL.Path) {
				out = append(out, http.MethodHead) // headAsGet
			}
		}
	}
	return out
}

// routingError is the REST mux's routing error handler: 405 with Allow for
// a method the path does not take, grpc-gateway's answers otherwise (404,
// 400). gateway.go passes it with runtime.WithRoutingErrorHandler.
func (a *restAllow) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus != http.StatusMethodNotAllowed {
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
		return
	}
	allowed := strings.Join(a.allowed(r), ", ")
	w.Header().Set("Allow", allowed)
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, &runtime.HTTPStatusError{
		HTTPStatus: http.StatusMethodNotAllowed,
		Err:        status.Errorf(codes.Unimplemented, "method %s is not allowed here; allowed: %s", r.Method, allowed),
	})
}

// noGRPCMetadata forwards no gRPC response header or trailer to a REST
// answer: grpc-gateway would copy each as Grpc-Metadata-* (the gRPC
// transport's content-type among them). Crowdgate's services send none a
// REST client needs (Retry-After is set by restErrorHandler). gateway.go
// passes it with runtime.WithOutgoingHeaderMatcher and
// runtime.WithOutgoingTrailerMatcher.
func noGRPCMetadata(string) (string, bool) { return "", false }

package gateway

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/crowdgate/crowdgate/services/platform/buildinfo"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// The gateway's own metrics (the README's metrics table lists every metric
// of the process). Label sets are bounded: methods, route patterns, status
// codes and command names, never a raw path, an id or a key; no exemplars.

// latencyBuckets are the buckets of the gateway's request histograms, from
// a warm landing (well under a millisecond) to a Submit that waited for
// Toloka.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// registerProcessMetrics registers the Go runtime's and the process's
// collectors, the build (crowdgate_build_info) and the Redis client's
// metrics (storage.Instrument).
func registerProcessMetrics(reg prometheus.Registerer, rdb *storage.Conn) error {
	if err := registerAll(reg, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.Get().Collector()); err != nil {
		return err
	}
	return storage.Instrument(reg, rdb.Client)
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// newRPCMetrics returns go-grpc-middleware's gRPC server metrics
// (grpc_server_started_total, grpc_server_handled_total,
// grpc_server_handling_seconds, grpc_server_msg_received_total,
// grpc_server_msg_sent_total; labels grpc_type, grpc_service, grpc_method,
// grpc_code), registered with reg. REST calls are counted too: they reach
// the handlers through the gRPC server. The gateway calls
// InitializeMetrics once every service is registered, so each method's
// series exist, at zero, from the first scrape.
func newRPCMetrics(reg prometheus.Registerer) *grpcprom.ServerMetrics {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(latencyBuckets)))
	reg.MustRegister(m)
	return m
}

// httpMetrics times every HTTP request by method, route pattern and status,
// with the names and labels of OpenTelemetry's HTTP semantic conventions as
// Prometheus writes them: http_server_request_duration_seconds{
// http_request_method, http_route, http_response_status_code}.
type httpMetrics struct {
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP requests (REST, landing, JWKS, health, metrics), by method, route pattern (\"unmatched\" when no route matched) and status code.",
		Buckets: latencyBuckets,
	}, []string{"http_request_method", "http_route", "http_response_status_code"})}
	reg.MustRegister(m.duration)
	return m
}

// restPrefix is the REST mux's route prefix (every REST route is under it).
const restPrefix = "/v1/"

// wrap times each request under the pattern of the route that served it:
// the REST route's pattern for a REST call (grpc-gateway's, which
// restRouteMiddleware reports), the mux's pattern otherwise.
func (m *httpMetrics) wrap(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rest := new(restRoute)
		if strings.HasPrefix(r.URL.Path, restPrefix) {
			// Only REST calls carry the holder: a landing stays as lean
			// as it was.
			r = r.WithContext(context.WithValue(r.Context(), restRouteKey{}, rest))
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(sw, r)
		// The mux has set the pattern it routed by on r (routing once).
		m.duration.WithLabelValues(methodLabel(r.Method), routeLabel(r.Pattern, rest.pattern), strconv.Itoa(sw.code)).
			Observe(time.Since(start).Seconds())
	})
}

// routeLabel is a request's route: the REST route's pattern when a REST
// route served it, else the mux's pattern without its method ("GET
// /healthz" is /healthz); "unmatched" when no route did (a REST path no
// REST route knows included).
func routeLabel(muxPattern, restPattern string) string {
	if restPattern != "" {
		return restPattern
	}
	if i := strings.IndexByte(muxPattern, ' '); i >= 0 {
		muxPattern = muxPattern[i+1:]
	}
	if muxPattern == "" || muxPattern == restPrefix {
		return "unmatched"
	}
	return muxPattern
}

// methodLabel is HTTP's own methods as they are, anything else _OTHER (as
// OpenTelemetry says), so a client cannot add label values.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

// restRoute carries the REST route that served a request from inside
// grpc-gateway's mux back to httpMetrics.wrap.
type restRoute struct{ pattern string }

type restRouteKey struct{}

// restRouteMiddleware is a grpc-gateway middleware (runtime.WithMiddlewares):
// it runs once the REST mux has matched a route and reports the route's
// pattern, as written in crowdgate_http.yaml ("/v1/pools/{pool_id}").
func restRouteMiddleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if rt, ok := r.Context().Value(restRouteKey{}).(*restRoute); ok {
			if p, ok := runtime.HTTPPattern(r.Context()); ok {
				rt.pattern = pathTemplate(p.String())
			}
		}
		next(w, r, params)
	}
}

// wildcardVariable is a path variable as grpc-gateway prints a compiled
// pattern: {pool_id=*}, {pool.pool_id=*}.
var wildcardVariable = regexp.MustCompile(`\{(?:[^={}.]+\.)*([^={}.]+)=\*\}`)

// pathTemplate turns a compiled pattern back into the path the OpenAPI
// document shows: /v1/pools/{pool_id=*}/open is /v1/pools/{pool_id}/open,
// and UpdatePool's /v1/pools/{pool.pool_id=*} is /v1/pools/{pool_id}.
func pathTemplate(compiled string) string {
	return wildcardVariable.ReplaceAllString(compiled, "{$1}")
}

type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wroteHeader {
		s.code, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

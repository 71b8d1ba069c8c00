package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// errorUnary is the one boundary where domain errors become gRPC status.
// What a client is not told (the cause of an UNAVAILABLE, the text of an
// INTERNAL) is logged here, with the method, so an operator sees it.
func errorUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if err == nil {
			return resp, nil
		}
		st := serviceerror.ToStatus(err)
		switch st.Code() {
		case codes.Internal, codes.Unknown:
			log.ErrorContext(ctx, "RPC failed", "method", info.FullMethod, "code", st.Code().String(), "err", err.Error())
		case codes.Unavailable:
			log.WarnContext(ctx, "RPC unavailable", "method", info.FullMethod, "err", err.Error())
		}
		return nil, st.Err()
	}
}

// recoverUnary turns a panic in a handler into INTERNAL and logs it, so one
// bad request never takes the replica down.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in RPC handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// recoverStream is recoverUnary for streaming RPCs (gRPC health's Watch,
// reflection).
func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in stream handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

// rpcMetrics counts and times every unary RPC by method and result code.
type rpcMetrics struct {
	handled *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crowdgate_grpc_handled_total",
			Help: "RPCs completed, by full method and gRPC code (REST calls included: they pass through gRPC).",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "crowdgate_grpc_handling_seconds",
			Help:    "RPC handling time, by full method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
	}
	reg.MustRegister(m.handled, m.latency)
	return m
}

func (m *rpcMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.latency.WithLabelValues(info.FullMethod).Observe(time.Since(start).Seconds())
	m.handled.WithLabelValues(info.FullMethod, status.Code(err).String()).Inc()
	return resp, err
}

// httpMetrics counts HTTP requests by route class and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crowdgate_http_requests_total",
		Help: "HTTP requests, by route pattern and status code.",
	}, []string{"route", "code"})}
	reg.MustRegister(m.requests)
	return m
}

// wrap counts each request under the pattern of the mux route that served
// it (bounded cardinality: never the raw path).
func (m *httpMetrics) wrap(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		mux.ServeHTTP(sw, r)
		// The mux has set the pattern it routed by (routing once).
		pattern := r.Pattern
		if pattern == "" {
			pattern = "unmatched"
		}
		m.requests.WithLabelValues(pattern, strconv.Itoa(sw.code)).Inc()
	})
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

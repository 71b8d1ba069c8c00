// Package gateway builds Crowdgate's servers in one place: the gRPC server
// with its interceptors (metrics, panic recovery, the one conversion of
// domain errors to gRPC status), the REST gateway in front of it, health and
// readiness, Prometheus metrics, the OpenAPI document, and the shutdown
// sequence that turns readiness off, lets in-flight work finish and exits.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/encoding/protojson"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// MaxRequestBytes bounds a REST request body and a gRPC message.
const MaxRequestBytes = 1 << 20

// Gateway is a running Crowdgate replica: its listeners, servers and
// dependencies. Create it with New, run it with Serve.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	redis   *storage.Conn
	metrics *prometheus.Registry

	grpcLis    net.Listener
	httpLis    net.Listener
	grpcServer *grpc.Server
	httpServer *http.Server
	restConn   *grpc.ClientConn
	health     *health.Server
	ready      atomic.Bool
	// healthMu orders the changes of gRPC health: the shutdown's (ready)
	// and the Redis probe's (redisDown).
	healthMu   sync.Mutex
	redisDown  bool
	mux        *http.ServeMux
	workers    []func(context.Context)
	auth       grpc.UnaryServerInterceptor
	authStream grpc.StreamServerInterceptor

	// drained is done once the shutdown's drain is over (endDrain): the
	// open streams end then (endOpenStreams).
	drained  context.Context
	endDrain context.CancelFunc
	// handlers counts the HTTP requests being served, for the shutdown to
	// wait for after its deadline.
	handlers handlerCount

	// drain waits out the shutdown drain delay; tests replace it.
	drain func(time.Duration)
}

// Option changes how New builds a gateway. cmd/crowdgate uses none; the
// test composition root (gatewaytest) uses them to run the real gateway on
// a test clock and a test Redis.
type Option func(*options)

type options struct {
	now   func() time.Time
	sleep func(context.Context, time.Duration) error
	redis redis.UniversalClient
}

// WithClock makes now the clock of every capability, and sleep the Toloka
// client's waits (retry backoffs, operation polls).
func WithClock(now func() time.Time, sleep func(context.Context, time.Duration) error) Option {
	return func(o *options) { o.now, o.sleep = now, sleep }
}

// WithRedis makes the gateway use an open Redis client (which it does not
// close) instead of connecting to the configured one.
func WithRedis(c redis.UniversalClient) Option {
	return func(o *options) { o.redis = c }
}

// Run starts a gateway with cfg and serves until ctx is done, then shuts it
// down gracefully. It is what cmd/crowdgate calls. ctx ending while the
// gateway starts is a stop, not a failure: Run returns nil.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	g, err := New(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while starting (a SIGTERM during the wait for Redis,
			// say): a stop that was asked for, not a failure.
			log.Info("crowdgate stopped before it started", "reason", err.Error())
			return nil
		}
		return err
	}
	return g.Serve(ctx)
}

// New connects to Redis, builds the servers and opens the listeners. Nothing
// is served until Serve. On failure everything opened so far is closed and
// the error names the setting at fault.
func New(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.now == nil {
		o.now = time.Now
	}
	g := &Gateway{cfg: cfg, log: log, metrics: prometheus.NewRegistry(), drain: time.Sleep}
	g.drained, g.endDrain = context.WithCancel(context.Background())
	if err := g.build(ctx, o); err != nil {
		g.closeAll()
		return nil, err
	}
	return g, nil
}

// build is New's work; New closes what it opened when it fails.
func (g *Gateway) build(ctx context.Context, o options) error {
	cfg, log := g.cfg, g.log

	tlsOpts, err := cfg.GRPCServerOptions()
	if err != nil {
		return err
	}
	if o.redis != nil {
		g.redis = &storage.Conn{Client: o.redis}
		g.redis.KeepOpen = true
	} else if g.redis, err = storage.Open(ctx, cfg.Redis, log); err != nil {
		return err
	}
	if err := registerProcessMetrics(g.metrics, g.redis); err != nil {
		return err
	}
	if g.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("CROWDGATE_GRPC_ADDR: listen on %s: %w", cfg.GRPCAddr, err)
	}
	if g.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("CROWDGATE_HTTP_ADDR: listen on %s: %w", cfg.HTTPAddr, err)
	}

	rpcMetrics := newRPCMetrics(g.metrics)
	g.grpcServer = grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRequestBytes),
		// Stop, at the shutdown's deadline, returns once the handlers
		// have (their contexts cancelled), not before: the workers and
		// Redis they use are stopped only after that.
		grpc.WaitForHandlers(true),
		// A request that does not decode is INVALID_ARGUMENT (codec.go).
		grpc.ForceServerCodecV2(newLenientCodec()),
		// undecodableUnary comes before anything that may answer without
		// calling on (auth): what the codec remembered is always taken.
		grpc.ChainUnaryInterceptor(rpcMetrics.UnaryServerInterceptor(), recoverUnary(log), errorUnary(log), undecodableUnary, g.authUnary, boundsUnary(o.now)),
		grpc.ChainStreamInterceptor(rpcMetrics.StreamServerInterceptor(), recoverStream(log), errorStream(log), g.endOpenStreams, g.authStreams, undecodableStream, boundsStream(o.now)),
	}, tlsOpts...)...)
	g.health = health.NewServer()
	healthpb.RegisterHealthServer(g.grpcServer, g.health)
	reflection.Register(g.grpcServer)

	g.mux = http.NewServeMux()
	w, err := wire(wiring{
		cfg: cfg, opts: o, log: log, redis: g.redis.Client, embedded: g.redis.Embedded,
		metrics: g.metrics, grpc: g.grpcServer, http: g.mux,
	})
	if err != nil {
		return err
	}
	g.workers, g.auth, g.authStream = w.workers, w.auth, w.authStream
	rpcMetrics.InitializeMetrics(g.grpcServer)
	return g.buildHTTP(ctx)
}

// authUnary runs the access check wired by wireAccess, if any. gRPC health
// and reflection are not unary Crowdgate RPCs and stay public.
func (g *Gateway) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if g.auth == nil || !strings.HasPrefix(info.FullMethod, "/crowdgate.") {
		return handler(ctx, req)
	}
	return g.auth(ctx, req, info, handler)
}

// authStreams runs the access check on server streams, as authUnary does.
func (g *Gateway) authStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if g.authStream == nil || !strings.HasPrefix(info.FullMethod, "/crowdgate.") {
		return handler(srv, ss)
	}
	return g.authStream(srv, ss, info, handler)
}

// loopbackWindow is the REST gateway's gRPC flow-control window a stream.
const loopbackWindow = 256 << 10

// restJSON is the REST answers' marshaler: proto field names, unset fields
// present, unknown fields refused.
var restJSON = &restMarshaler{JSONPb: runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// restHandlers are the grpc-gateway registrations of every service.
var restHandlers = []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
	crowdgatev1.RegisterCredentialServiceHandler,
	crowdgatev1.RegisterProjectServiceHandler,
	crowdgatev1.RegisterPoolServiceHandler,
	crowdgatev1.RegisterSessionServiceHandler,
	crowdgatev1.RegisterSubmissionServiceHandler,
	crowdgatev1.RegisterReviewServiceHandler,
	crowdgatev1.RegisterTolokerServiceHandler,
	crowdgatev1.RegisterBanServiceHandler,
	crowdgatev1.RegisterSkillServiceHandler,
	crowdgatev1.RegisterAccessServiceHandler,
	crowdgatev1.RegisterEventServiceHandler,
	crowdgatev1.RegisterWebhookServiceHandler,
	crowdgatev1.RegisterExportServiceHandler,
}

// buildHTTP assembles the HTTP side: REST (through the gRPC server, so REST
// calls pass the same interceptors), health, metrics and the OpenAPI document.
func (g *Gateway) buildHTTP(ctx context.Context) error {
	creds, err := g.cfg.RESTLoopbackCredentials()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(loopbackAddr(g.grpcLis.Addr()),
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16*MaxRequestBytes)),
		// Fixed flow-control windows (which turns off gRPC's BDP estimate,
		// whose windows grow to 16 MiB a stream): an export's rows wait in
		// Redis, not in this buffer, while a slow REST client reads
		// (services/gateway/export.go). Loopback needs no more for speed.
		grpc.WithInitialWindowSize(loopbackWindow), grpc.WithInitialConnWindowSize(4*loopbackWindow))
	if err != nil {
		return fmt.Errorf("connect REST gateway to gRPC: %w", err)
	}
	g.restConn = conn
	allow, err := newRESTAllow(ctx, conn) // 405 with Allow
	if err != nil {
		return err
	}
	var rest *runtime.ServeMux
	rest = runtime.NewServeMux(append([]runtime.ServeMuxOption{
		runtime.WithIncomingHeaderMatcher(restHeaderMatcher),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, restJSON),
		runtime.SetQueryParameterParser(&strictQuery{}), // unknown parameters refused (restquery.go)
		runtime.WithErrorHandler(restErrorHandler),
		runtime.WithRoutingErrorHandler(allow.routingError),
		runtime.WithOutgoingHeaderMatcher(noGRPCMetadata),
		runtime.WithOutgoingTrailerMatcher(noGRPCMetadata),
		runtime.WithMiddlewares(restRouteMiddleware), // the REST route, for the HTTP metrics
	}, exportMuxOptions(&rest)...)...) // exports: JSON Lines or CSV (export.go)
	for _, register := range restHandlers {
		if err := register(ctx, rest, conn); err != nil {
			return fmt.Errorf("register REST handler: %w", err)
		}
	}

	mux := g.mux
	origins := newCORS(g.cfg.CORS)
	mux.Handle("/v1/", refuseCrossOrigin(origins, limitBody(rejectInvalidUTF8(headAsGet(rest)))))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.metrics, promhttp.HandlerOpts{Registry: g.metrics}))
	doc, err := openAPIDocument(g.cfg.PublicURL)
	if err != nil {
		return err
	}
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	})

	g.httpServer = &http.Server{
		Handler:           g.counted(withCORS(origins, newHTTPMetrics(g.metrics).wrap(mux))),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return nil
}

// readyz answers 200 while the replica takes traffic and Redis answers, 503
// otherwise (during shutdown, or with Redis unreachable).
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if !g.ready.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("shutting down\n"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := g.redis.Client.Ping(ctx).Err(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("redis unavailable\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// GRPCAddr is the address the gRPC server listens on.
func (g *Gateway) GRPCAddr() string { return g.grpcLis.Addr().String() }

// HTTPAddr is the address the HTTP server listens on.
func (g *Gateway) HTTPAddr() string { return g.httpLis.Addr().String() }

// setServing flips readiness on both protocols.
func (g *Gateway) setServing(serving bool) {
	g.healthMu.Lock()
	defer g.healthMu.Unlock()
	g.ready.Store(serving)
	g.applyHealth()
}

// setRedisDown records what the Redis probe found; gRPC health follows it
// as /readyz does (which pings Redis on every call).
func (g *Gateway) setRedisDown(down bool) {
	g.healthMu.Lock()
	defer g.healthMu.Unlock()
	if g.redisDown == down {
		return
	}
	g.redisDown = down
	g.applyHealth()
}

// applyHealth sets gRPC health: SERVING while the replica takes traffic
// and Redis answers. The caller holds healthMu.
func (g *Gateway) applyHealth() {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if g.ready.Load() && !g.redisDown {
		st = healthpb.HealthCheckResponse_SERVING
	}
	g.health.SetServingStatus("", st)
	for name := range g.grpcServer.GetServiceInfo() {
		g.health.SetServingStatus(name, st)
	}
}

// HealthProbeInterval is how often a serving replica pings Redis for its
// gRPC health.
const HealthProbeInterval = time.Second

// probeRedis pings Redis every HealthProbeInterval until ctx ends, so gRPC
// health turns NOT_SERVING while Redis does not answer (it used to stay
// SERVING: load balancers and clients checking the gRPC port kept sending
// calls a replica without Redis cannot serve).
func (g *Gateway) probeRedis(ctx context.Context) {
	t := time.NewTicker(HealthProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := g.redis.Client.Ping(pctx).Err()
		cancel()
		if ctx.Err() != nil {
			return
		}
		g.setRedisDown(err != nil)
	}
}

// Serve serves until ctx is done, then shuts down: readiness turns
// NOT_SERVING, the drain delay passes, the servers stop taking new work and
// in-flight requests finish (bounded by ShutdownTimeout). It returns nil
// after a clean shutdown.
func (g *Gateway) Serve(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() {
		if err := g.grpcServer.Serve(g.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("gRPC server: %w", err)
		}
	}()
	go func() {
		if err := g.httpServer.Serve(g.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	}()
	workerCtx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var workers sync.WaitGroup
	for _, w := range g.workers {
		workers.Go(func() { w(workerCtx) })
	}
	g.setServing(true)
	go g.probeRedis(ctx)
	g.log.Info("crowdgate is serving",
		"grpc_addr", g.GRPCAddr(), "http_addr", g.HTTPAddr(),
		"landing_url", g.cfg.LandingURL(), "embedded_redis", g.redis.Embedded)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	g.shutdown(func() {
		stopWorkers()
		// An attempt in a worker's hands bounds itself (10 s for a
		// webhook), and read-ahead entries follow it: the workers get the
		// handlers' grace, no more, so the whole shutdown stays within
		// drain + timeout + 5 s (terminationGracePeriodSeconds' margin).
		// What they leave is pending in Redis: another replica reclaims it,
		// and an attempt made but not recorded is made again (the same
		// retry_id for Toloka, the same webhook-id for an endpoint).
		if !waitUpTo(handlerGrace, workers.Wait) {
			g.log.Warn("outbox workers still running after their grace; what they hold is left to other replicas", "waited", handlerGrace)
		}
	})
	return serveErr
}

// handlerGrace bounds the wait, after the shutdown's deadline, for the
// handlers whose calls were cut off to return (their contexts are
// cancelled, so they return at once unless one is stuck).
const handlerGrace = 5 * time.Second

// counted counts the HTTP requests being served (g.handlers).
func (g *Gateway) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.handlers.add(1)
		defer g.handlers.add(-1)
		h.ServeHTTP(w, r)
	})
}

// handlerCount counts running handlers; wait returns once none runs. A
// handler may start while wait waits (a request read just before the
// server closed), which a sync.WaitGroup does not allow.
type handlerCount struct {
	mu   sync.Mutex
	n    int
	none *sync.Cond // signalled when n drops to 0
}

func (c *handlerCount) add(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += d
	if c.n == 0 && c.none != nil {
		c.none.Broadcast()
	}
}

func (c *handlerCount) wait() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.none == nil {
		c.none = sync.NewCond(&c.mu)
	}
	for c.n > 0 {
		c.none.Wait()
	}
}

// shutdown stops the servers gracefully, then the background workers
// (stopWorkers), then closes the dependencies. After the drain the open
// streams end (endOpenStreams); calls still running at the deadline are
// cut off, and their handlers are waited for (up to handlerGrace), so
// that none uses a worker or Redis after they are stopped.
func (g *Gateway) shutdown(stopWorkers func()) {
	g.log.Info("shutting down: readiness is NOT_SERVING", "drain", g.cfg.ShutdownDrain)
	g.setServing(false)
	g.drain(g.cfg.ShutdownDrain)
	g.endDrain()
	ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.httpServer.Shutdown(ctx); err != nil {
			g.log.Warn("HTTP requests still running at the shutdown deadline; cutting them off", "err", err)
			_ = g.httpServer.Close()
			if !waitUpTo(handlerGrace, g.handlers.wait) {
				g.log.Error("HTTP handlers still running after they were cut off", "waited", handlerGrace)
			}
		}
	})
	wg.Go(func() {
		done := make(chan struct{})
		go func() { g.grpcServer.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			g.log.Warn("gRPC calls still running at the shutdown deadline; stopping them")
			if !waitUpTo(handlerGrace, g.grpcServer.Stop) {
				g.log.Error("gRPC handlers still running after they were cut off", "waited", handlerGrace)
			}
		}
	})
	wg.Wait()
	stopWorkers()
	g.closeAll()
	g.log.Info("shutdown complete")
}

// waitUpTo runs wait and reports whether it returned within d.
func waitUpTo(d time.Duration, wait func()) bool {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// closeAll releases what New opened.
func (g *Gateway) closeAll() {
	if g.endDrain != nil {
		g.endDrain()
	}
	if g.restConn != nil {
		_ = g.restConn.Close()
	}
	for _, l := range []net.Listener{g.grpcLis, g.httpLis} {
		if l != nil {
			_ = l.Close()
		}
	}
	if g.redis != nil {
		_ = g.redis.Close()
	}
}

// loopbackAddr turns a listener address such as [::]:9090 into one the
// process can dial.
func loopbackAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		_, port, _ := net.SplitHostPort(a.String())
		return net.JoinHostPort("127.0.0.1", port)
	}
	return a.String()
}

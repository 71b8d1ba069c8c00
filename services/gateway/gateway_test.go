package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	cfg, err := Load([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.URL = redistest.New(t).URL
	return cfg
}

// startGateway runs a gateway until the test ends and returns it and a
// function that stops it and reports Serve's result.
func startGateway(t testing.TB, cfg Config, prepare func(*Gateway)) (*Gateway, func() error) {
	t.Helper()
	return startLoggingGateway(t, cfg, slog.New(slog.DiscardHandler), prepare)
}

// startLoggingGateway is startGateway logging to log. prepare, when set,
// sees the gateway after New and before Serve.
func startLoggingGateway(t testing.TB, cfg Config, log *slog.Logger, prepare func(*Gateway)) (*Gateway, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(g)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	waitReady(t, "http://"+g.HTTPAddr())
	return g, stop
}

func waitReady(t testing.TB, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never became ready", base)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServesHealthMetricsOpenAPIAndREST(t *testing.T) {
	g, stop := startGateway(t, testConfig(t), nil)
	base := "http://" + g.HTTPAddr()

	for _, tc := range []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", 200, "ok"},
		{"/readyz", 200, "ready"},
		{"/openapi.json", 200, `"swagger": "2.0"`},
		{"/v1/projects/p1", 404, `project \"p1\" not found`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, body := get(t, base+tc.path)
			if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tc.path, code, body, tc.wantCode, tc.wantBody)
			}
		})
	}

	// REST decoding is strict: a misspelt field is a 400, not silently dropped.
	resp, err := http.Post(base+"/v1/credentials", "application/json", strings.NewReader(`{"display_nam": "x"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown field: status %d, want 400", resp.StatusCode)
	}

	// Metrics count the REST call under its gRPC method.
	_, metrics := get(t, base+"/metrics")
	if want := `grpc_server_handled_total{grpc_code="NotFound",grpc_method="GetProject",grpc_service="crowdgate.v1.ProjectService",grpc_type="unary"} 1`; !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	// HTTP requests count under the route that served them, never the raw
	// path.
	get(t, base+"/no/such/path/123")
	_, metrics = get(t, base+"/metrics")
	for _, want := range []string{
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/healthz"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="unmatched"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, "/no/such/path") {
		t.Error("/metrics shows a raw request path")
	}

	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("gRPC health = %v, %v; want SERVING", hc.GetStatus(), err)
	}
	_, err = crowdgatev1.NewPoolServiceClient(conn).GetPool(context.Background(), &crowdgatev1.GetPoolRequest{PoolId: "x"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("GetPool of an unknown pool: %v, want NOT_FOUND", err)
	}

	if err := stop(); err != nil {
		t.Errorf("Serve returned %v after a clean shutdown", err)
	}
}

func TestShutdownTurnsNotServingThenFinishesInFlightWork(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShutdownDrain = time.Hour // replaced below: the test decides when the drain ends
	draining := make(chan struct{})
	endDrain := make(chan struct{})
	release := make(chan struct{})
	started := make(chan struct{})

	g, stop := startGateway(t, cfg, func(g *Gateway) {
		g.drain = func(time.Duration) { close(draining); <-endDrain }
		inner := g.httpServer.Handler
		g.httpServer.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				close(started)
				<-release
				_, _ = w.Write([]byte("finished"))
				return
			}
			inner.ServeHTTP(w, r)
		})
	})
	base := "http://" + g.HTTPAddr()

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			slow <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-started

	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-draining

	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz during drain = %d, want 503", code)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during drain = %d, want 200 (alive, just not ready)", code)
	}
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("gRPC health during drain = %v, %v; want NOT_SERVING", hc.GetStatus(), err)
	}

	close(endDrain)
	close(release)
	if got := <-slow; got != "finished" {
		t.Errorf("in-flight request got %q, want it to finish", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestLandingLimitsComeFromTheConfiguration(t *testing.T) {
	cfg := testConfig(t)
	r := redistest.New(t) // this test's own keys: the shared limits outlive a run
	cfg.Redis.URL, cfg.Redis.Prefix = r.URL, r.Prefix
	cfg.Landing.PerAssignment = ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 2}
	g, _ := startGateway(t, cfg, nil)
	// A well-formed id of a pool nobody manages: 404, until the limit.
	url := "http://" + g.HTTPAddr() + LandingPath + "?assignment_id=00000f4240--" + strings.Repeat("a", 24)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, want := range []int{http.StatusNotFound, http.StatusNotFound, http.StatusTooManyRequests} {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("landing %d: status %d, want %d", i+1, resp.StatusCode, want)
		}
	}
}

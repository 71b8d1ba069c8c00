package gateway

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestGRPCHealthFollowsRedisAsReadyzDoes: a replica whose Redis does not
// answer is not ready on /readyz, and its gRPC health says so too; it used
// to stay SERVING, so load balancers and clients checking the gRPC port
// kept sending it calls it could not serve (found by the operations
// review). When Redis is back, both are ready again.
func TestGRPCHealthFollowsRedisAsReadyzDoes(t *testing.T) {
	mini := miniredis.RunT(t)
	cfg, err := Load([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis.URL = "redis://" + mini.Addr()
	g, _ := startGateway(t, cfg, nil)
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	until := func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			got, err := watch.Recv()
			if err != nil {
				t.Fatalf("gRPC health never said %v: %v", want, err)
			}
			if got.GetStatus() == want {
				return
			}
		}
	}
	until(healthpb.HealthCheckResponse_SERVING)

	mini.Close() // Redis goes away
	until(healthpb.HealthCheckResponse_NOT_SERVING)
	if code, body := get(t, "http://"+g.HTTPAddr()+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Redis down: %d %q, want 503", code, body)
	}

	if err := mini.Restart(); err != nil { // Redis is back
		t.Fatal(err)
	}
	until(healthpb.HealthCheckResponse_SERVING)
	if code, body := get(t, "http://"+g.HTTPAddr()+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with Redis back: %d %q, want 200", code, body)
	}
}

package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// Every stream method the gateway serves is classified: it either ends at
// the shutdown's drain (openStreams) or is in-flight work that finishes
// (boundedStreams). A new stream method fails here until it is one or the
// other.
func TestEveryStreamIsBoundedOrEndsAtShutdown(t *testing.T) {
	g, _ := startGateway(t, testConfig(t), nil)
	n := 0
	for service, info := range g.grpcServer.GetServiceInfo() {
		for _, m := range info.Methods {
			if !m.IsServerStream && !m.IsClientStream {
				continue
			}
			n++
			name := "/" + service + "/" + m.Name
			if openStreams[name] == boundedStreams[name] {
				t.Errorf("stream %s: open %v, bounded %v; want exactly one", name, openStreams[name], boundedStreams[name])
			}
		}
	}
	if n != len(openStreams)+len(boundedStreams) {
		t.Errorf("the server has %d stream methods, the lists name %d", n, len(openStreams)+len(boundedStreams))
	}
}

// Streams that never end by themselves (a WatchEvents following the log,
// a health watch, a reflection session waiting to receive) do not hold the
// shutdown up: once the drain is over they
// end with UNAVAILABLE (the client resumes elsewhere), the graceful stop
// finishes without reaching its deadline, and Serve returns cleanly.
func TestOpenStreamsEndWhenTheDrainIsOver(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShutdownTimeout = time.Minute // what an open stream used to hold the stop for
	logs := &lockedBuffer{}
	drained := make(chan struct{})
	g, stop := startLoggingGateway(t, cfg, slog.New(slog.NewTextHandler(logs, nil)), func(g *Gateway) {
		g.drain = func(time.Duration) { close(drained) }
	})
	conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	watch, err := crowdgatev1.NewEventServiceClient(conn).WatchEvents(ctx, &crowdgatev1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // the server is following the log
		t.Fatal(err)
	}
	health, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := health.Recv(); err != nil || st.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health watch: %v, %v; want SERVING", st, err)
	}

	// A reflection session waits to receive, not on its context.
	refl, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := refl.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := refl.Recv(); err != nil {
		t.Fatal(err)
	}

	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	<-drained
	if _, err := refl.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("reflection after the drain: %v; want UNAVAILABLE", err)
	}
	_, err = watch.Recv()
	if status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "shutting down") {
		t.Errorf("WatchEvents after the drain: %v; want UNAVAILABLE saying the replica is shutting down", err)
	}
	for {
		st, err := health.Recv()
		if err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("health watch after the drain: %v; want UNAVAILABLE", err)
			}
			break
		}
		if st.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Errorf("health watch during the shutdown: %v; want NOT_SERVING", st.GetStatus())
		}
	}
	if err := <-stopped; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if strings.Contains(logs.String(), "shutdown deadline") {
		t.Errorf("the shutdown reached its deadline:\n%s", logs.String())
	}
}

// A request still running at the shutdown's deadline is cut off, and the
// shutdown waits for its handler to return before it stops the workers
// and closes Redis (which the handler may still be using).
func TestACallCutOffAtTheDeadlineEndsBeforeTheWorkersStop(t *testing.T) {
	cfg := testConfig(t)
	cfg.ShutdownDrain = 0
	cfg.ShutdownTimeout = 100 * time.Millisecond // the deadline under test
	started := make(chan struct{})
	order := make(chan string, 2)
	g, stop := startGateway(t, cfg, func(g *Gateway) {
		inner := g.httpServer.Handler
		g.httpServer.Handler = g.counted(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/stuck" {
				inner.ServeHTTP(w, r)
				return
			}
			close(started)
			<-r.Context().Done() // returns once the call is cut off
			order <- "handler returned"
		}))
		g.workers = append(g.workers, func(ctx context.Context) {
			<-ctx.Done()
			order <- "workers stopped"
		})
	})
	go func() {
		if resp, err := http.Get("http://" + g.HTTPAddr() + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	if err := stop(); err != nil {
		t.Errorf("Serve: %v", err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case o := <-order:
			got = append(got, o)
		case <-time.After(30 * time.Second): // a bound for the failure report only
			t.Fatalf("after the shutdown: %v; the cut-off handler never returned", got)
		}
	}
	if got[0] != "handler returned" || got[1] != "workers stopped" {
		t.Errorf("order: %v; want the cut-off handler to return before the workers stop", got)
	}
}

package gateway

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

type fakeServerStream struct{ ctx context.Context }

func (f fakeServerStream) SetHeader(metadata.MD) error  { return nil }
func (f fakeServerStream) SendHeader(metadata.MD) error { return nil }
func (f fakeServerStream) SetTrailer(metadata.MD)       {}
func (f fakeServerStream) Context() context.Context     { return f.ctx }
func (f fakeServerStream) SendMsg(any) error            { return nil }
func (f fakeServerStream) RecvMsg(any) error            { return io.EOF }

// TestAPanicInAnOpenStreamIsRecovered: a panic in a stream handler becomes
// INTERNAL, so one bad request never takes the replica down. endOpenStreams
// runs the rest of the chain and the handler of WatchEvents, gRPC health's
// Watch and reflection in a goroutine of its own, where recoverStream's
// recover cannot see a panic: it used to end the process. The child
// process below runs the gateway's own chain with a WatchEvents handler
// that panics.
func TestAPanicInAnOpenStreamIsRecovered(t *testing.T) {
	if os.Getenv("CROWDGATE_TEST_STREAM_PANIC_CHILD") == "1" {
		log := slog.New(slog.DiscardHandler)
		g := &Gateway{log: log}
		g.drained, g.endDrain = context.WithCancel(context.Background())
		chain := []grpc.StreamServerInterceptor{recoverStream(log), errorStream(log), g.endOpenStreams}
		info := &grpc.StreamServerInfo{FullMethod: crowdgatev1.EventService_WatchEvents_FullMethodName, IsServerStream: true}
		var handler grpc.StreamHandler = func(any, grpc.ServerStream) error { panic("a bug in a stream handler") }
		for i := len(chain) - 1; i >= 0; i-- {
			ic, next := chain[i], handler
			handler = func(srv any, ss grpc.ServerStream) error { return ic(srv, ss, info, next) }
		}
		err := handler(nil, fakeServerStream{ctx: context.Background()})
		if err == nil {
			os.Exit(3)
		}
		os.Exit(0) // recovered: INTERNAL, as recoverStream promises
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAPanicInAnOpenStreamIsRecovered$")
	cmd.Env = append(os.Environ(), "CROWDGATE_TEST_STREAM_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("a panic in a WatchEvents handler took the process down (%v):\n%.600s", err, out)
	}
}

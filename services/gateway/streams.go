package gateway

import (
	"context"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// Every server stream is one of two kinds, and TestEveryStreamIsBoundedOrEndsAtShutdown
// fails for a stream method in neither list:
//
//   - openStreams never end by themselves (a watch that follows the event
//     log, a health watch, a reflection session): once the shutdown's
//     drain is over they are ended with UNAVAILABLE, so that they do not
//     hold the graceful stop until its deadline (and with it every call
//     still running); the client resumes on another replica (WatchEvents
//     from the cursor of the last event it got);
//   - boundedStreams end when their work is done (an export): they are
//     in-flight work, and finish within the shutdown timeout like a unary
//     call.
var (
	openStreams = map[string]bool{
		crowdgatev1.EventService_WatchEvents_FullMethodName:                    true,
		healthpb.Health_Watch_FullMethodName:                                   true,
		reflectionpb.ServerReflection_ServerReflectionInfo_FullMethodName:      true,
		reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: true,
	}
	boundedStreams = map[string]bool{
		crowdgatev1.ExportService_ExportSubmissions_FullMethodName: true,
		crowdgatev1.ExportService_ExportSessions_FullMethodName:    true,
		crowdgatev1.ExportService_ExportTolokers_FullMethodName:    true,
	}
)

// shutdownRetry is the Retry-After an open stream ended by a shutdown
// suggests: another replica takes the reconnect at once.
const shutdownRetry = time.Second

// streamEndGrace is how long an open stream's handler has, once its
// context is cancelled at the drain's end, to return before the stream is
// ended without it (a handler waiting to receive, as reflection's does,
// returns once the stream has ended).
const streamEndGrace = time.Second

// endOpenStreams is the stream interceptor that ends the open streams
// (openStreams) when g.drained is done: the handler's context is
// cancelled, and the stream ends with UNAVAILABLE once the handler has
// returned or streamEndGrace has passed, whichever comes first. It sits
// inside errorStream, which converts that to a gRPC status.
func (g *Gateway) endOpenStreams(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !openStreams[info.FullMethod] {
		return handler(srv, ss)
	}
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- recovering(g.log, info.FullMethod, func() error { return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx}) })
	}()
	select {
	case err := <-done:
		return err
	case <-g.drained.Done():
	}
	cancel()
	t := time.NewTimer(streamEndGrace)
	defer t.Stop()
	select {
	case err := <-done:
		if ss.Context().Err() != nil {
			return err // the client went first
		}
	case <-t.C:
	}
	return &serviceerror.Unavailable{
		Message:    "this Crowdgate replica is shutting down; call again (WatchEvents: from the cursor of the last event received)",
		RetryAfter: shutdownRetry,
	}
}

// ctxStream is a server stream with a context of its own.
type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

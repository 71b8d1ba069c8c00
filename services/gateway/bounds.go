package gateway

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/crowdgate/crowdgate/services/platform/bounds"
)

// boundsUnary refuses a request with a field out of its bound
// (services/platform/bounds: lengths of strings and bytes, elements of
// lists and maps, nesting, timestamps) before the handler runs, so before
// any Redis or Toloka call: INVALID_ARGUMENT naming the field, for gRPC and
// REST alike. It runs after authentication, so an unauthenticated caller
// learns nothing about the bounds and the audit log records the refusal of
// a write. now is the gateway's clock (the timestamps' horizon).
//
// Fields this build does not know (a newer client's, or junk) are then
// dropped: proto3 ignores them, but a handler that stores a clone of its
// request (projects, pools) would otherwise store them too, unbounded. REST
// refuses unknown fields already.
func boundsUnary(now func() time.Time) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok {
			if err := bounds.Check(m.ProtoReflect(), now()); err != nil {
				return nil, err
			}
			bounds.DiscardUnknown(m.ProtoReflect())
		}
		return handler(ctx, req)
	}
}

// boundsStream checks every message a client streams in (WatchEvents'
// request) as boundsUnary checks a unary request.
func boundsStream(now func() time.Time) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &boundedStream{ServerStream: ss, now: now})
	}
}

type boundedStream struct {
	grpc.ServerStream
	now func() time.Time
}

func (s *boundedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		if err := bounds.Check(pm.ProtoReflect(), s.now()); err != nil {
			return err
		}
		bounds.DiscardUnknown(pm.ProtoReflect())
	}
	return nil
}

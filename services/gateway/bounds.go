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

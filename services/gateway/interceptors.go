package gateway

import (
	"context"
	"log/slog"
	"runtime/debug"

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
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return recovering(log, info.FullMethod, func() error { return handler(srv, ss) })
	}
}

// recovering runs f, the rest of a stream's chain, turning a panic into
// INTERNAL (logged with its stack). recoverStream runs the chain in it,
// and so does every interceptor that runs the rest of the chain in a
// goroutine of its own, where recoverStream's recover cannot reach.
func recovering(log *slog.Logger, method string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic in stream handler", "method", method, "panic", p, "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return f()
}

// errorStream converts a stream's domain error to its gRPC status, as
// errorUnary does for unary calls.
func errorStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if err == nil {
			return nil
		}
		st := serviceerror.ToStatus(err)
		switch st.Code() {
		case codes.Internal, codes.Unknown:
			log.ErrorContext(ss.Context(), "stream failed", "method", info.FullMethod, "code", st.Code().String(), "err", err.Error())
		case codes.Unavailable:
			log.WarnContext(ss.Context(), "stream unavailable", "method", info.FullMethod, "err", err.Error())
		}
		return st.Err()
	}
}

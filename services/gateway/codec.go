package gateway

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	encodingproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// lenientCodec is gRPC's proto codec for the server's requests, whose
// Unmarshal does not fail: grpc-go answers every Unmarshal error with
// INTERNAL before any interceptor runs, so a client's malformed message
// (invalid UTF-8 in a string, a broken wire format) would read as the
// server's fault and go uncounted. A request it cannot decode is reset and
// remembered instead, and undecodableUnary or undecodableStream, in every
// call's interceptor chain, refuses it with INVALID_ARGUMENT. gateway.New
// installs it with grpc.ForceServerCodecV2, and puts undecodableUnary
// before any interceptor that may answer without calling on (auth), so
// every entry is taken (a unary request is decoded before the chain runs;
// a stream's message in RecvMsg, which checkedStream wraps).
type lenientCodec struct{ encoding.CodecV2 }

// undecodable holds the requests lenientCodec could not decode (the
// message pointer), with the error, until an interceptor takes them.
var undecodable sync.Map

func newLenientCodec() lenientCodec {
	return lenientCodec{encoding.GetCodecV2(encodingproto.Name)}
}

// Unmarshal decodes data into v, or resets v and remembers why it could not.
func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if err := c.CodecV2.Unmarshal(data, v); err != nil {
		m, ok := v.(proto.Message)
		if !ok {
			return err
		}
		proto.Reset(m)
		undecodable.Store(v, err)
	}
	return nil
}

// undecodableError takes what lenientCodec remembered of req: an
// INVALID_ARGUMENT, or nil when req was decoded.
func undecodableError(req any) error {
	if err, ok := undecodable.LoadAndDelete(req); ok {
		return serviceerror.NewInvalidArgument("request", "the message cannot be decoded: %v", err)
	}
	return nil
}

// undecodableUnary refuses a request lenientCodec could not decode.
func undecodableUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := undecodableError(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// undecodableStream refuses each message of a stream lenientCodec could
// not decode.
func undecodableStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, checkedStream{ss})
}

type checkedStream struct{ grpc.ServerStream }

func (s checkedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return undecodableError(m)
}

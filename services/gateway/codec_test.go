package gateway

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// sendAsIs is a client codec that sends bytes as they are.
type sendAsIs struct{}

func (sendAsIs) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}
func (sendAsIs) Unmarshal(mem.BufferSlice, any) error { return nil }
func (sendAsIs) Name() string                         { return "proto" }

// An undecodable request is refused before any interceptor that answers
// without calling on (auth), so what the codec remembers of it is taken
// also when the caller has no key: nobody can make the gateway keep them.
func TestUndecodableRequestsAreNotKeptForCallersWithoutAKey(t *testing.T) {
	a := startAccessGateway(t, nil)
	for _, ctx := range []context.Context{context.Background(), bearer("not-a-key")} {
		for range 20 {
			err := a.conn.Invoke(ctx, "/crowdgate.v1.CredentialService/GetCredential", []byte{0x0a, 0x7f, 'a'}, new([]byte), grpc.ForceCodecV2(sendAsIs{}))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("a broken message without a valid key: %v, want INVALID_ARGUMENT", err)
			}
		}
	}
	kept := 0
	undecodable.Range(func(any, any) bool { kept++; return true })
	if kept != 0 {
		t.Errorf("%d undecodable requests kept after they were answered, want none", kept)
	}
}

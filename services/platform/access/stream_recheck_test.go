package access

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

type countHMGet struct{ n atomic.Int64 }

func (h *countHMGet) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHMGet) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "hmget") {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *countHMGet) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

type sendOnlyStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *sendOnlyStream) Context() context.Context { return s.ctx }
func (s *sendOnlyStream) SendMsg(any) error        { return nil }

// TestAStreamReadsItsKeyOncePerRecheck: an open stream checks its API key
// again every StreamRecheck, not before every message: checked per
// message, a WatchEvents catching up on 100k events, or an export of a
// million rows, made as many reads of the key's record, one after the
// other on the stream's goroutine. Once StreamRecheck has passed, the next
// message checks it again.
func TestAStreamReadsItsKeyOncePerRecheck(t *testing.T) {
	hook := &countHMGet{}
	f := newFixture(t, func(c *Config) { c.Redis.(*redis.Client).AddHook(hook) })
	tid := f.newTenant(t, "A")
	_, secret := f.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+secret))
	const msgs = 1000
	var opened, sent, rechecked int64
	err := f.svc.Stream(nil, &sendOnlyStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: crowdgatev1.EventService_WatchEvents_FullMethodName, IsServerStream: true},
		func(_ any, ss grpc.ServerStream) error {
			opened = hook.n.Load()
			for range msgs {
				if err := ss.SendMsg(&crowdgatev1.WatchEventsResponse{}); err != nil {
					return err
				}
			}
			sent = hook.n.Load()
			f.clock.Advance(StreamRecheck)
			if err := ss.SendMsg(&crowdgatev1.WatchEventsResponse{}); err != nil {
				return err
			}
			rechecked = hook.n.Load()
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if sent != opened {
		t.Errorf("%d messages within StreamRecheck read the key %d times, want 0", msgs, sent-opened)
	}
	if rechecked != sent+1 {
		t.Errorf("the first message after StreamRecheck read the key %d times, want 1", rechecked-sent)
	}
}

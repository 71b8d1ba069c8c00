package gateway

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/access"
)

// TestARevokedKeysOpenEventStreamGetsNothingMore: a revoked key is refused
// on the next call, and an open WatchEvents stream of it gets nothing made
// more than access.StreamRecheck after the revocation: the stream ends
// UNAUTHENTICATED. It used to be authenticated
// once, when it opened, and went on streaming the tenant's events, with
// their data, for as long as the holder kept the connection: revoking a
// leaked key did not cut it off.
func TestARevokedKeysOpenEventStreamGetsNothingMore(t *testing.T) {
	a := startAccessGateway(t, nil)
	tid := a.newTenant(t, "A")
	readID, readKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	_, writeKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)

	ctx, cancel := context.WithTimeout(bearer(readKey), 30*time.Second)
	defer cancel()
	watch, err := crowdgatev1.NewEventServiceClient(a.conn).WatchEvents(ctx, &crowdgatev1.WatchEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	buildFlow(t, a, bearer(writeKey))
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("before the revocation: %v, want the tenant's first event", err)
	}

	// The key leaks; the tenant's admin revokes it, and the tenant goes on
	// working.
	revoked, err := a.accessClient().RevokeApiKey(bearer(testAdminKey), &crowdgatev1.RevokeApiKeyRequest{ApiKeyId: readID})
	if err != nil {
		t.Fatalf("RevokeApiKey: %v", err)
	}
	// Events made before the revocation, and for up to
	// access.StreamRecheck after it, may still arrive; then the stream
	// ends, and nothing made later arrives.
	done := make(chan error, 1)
	var late []*crowdgatev1.Event
	go func() {
		for {
			r, err := watch.Recv()
			if err != nil {
				done <- err
				return
			}
			if ev := r.GetEvent(); ev.GetCreateTime().AsTime().After(revoked.GetApiKey().GetRevokeTime().AsTime().Add(access.StreamRecheck + 250*time.Millisecond)) {
				late = append(late, ev)
			}
		}
	}()
	// The tenant's log goes on getting events (recorded as another
	// replica records them).
	evs, err := events.New(events.Config{Redis: a.redis.Client, Prefix: a.redis.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := evs.Append(context.Background(), evs.New(tid, events.TypePoolOpened, fmt.Sprintf("pools/p%d", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("the stream ended with %v, want UNAUTHENTICATED", err)
			}
			for _, ev := range late {
				t.Errorf("the stream got event %s %s made at %s, over %s after the revocation (%s)",
					ev.GetType(), ev.GetResource(), ev.GetCreateTime().AsTime(), access.StreamRecheck, revoked.GetApiKey().GetRevokeTime().AsTime())
			}
			return
		case <-ctx.Done():
			t.Fatal("the stream of the revoked key did not end")
		default:
		}
	}
}

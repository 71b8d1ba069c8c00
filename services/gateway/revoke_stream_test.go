package gateway

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestARevokedKeysOpenEventStreamGetsNothingMore: a revoked key is refused
// on the next call, and an open WatchEvents stream of it is refused its
// next event: the stream ends UNAUTHENTICATED. It used to be authenticated
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
	buildFlow(t, a, bearer(writeKey))
	// Events sent before the revocation may still be on their way; none
	// made after it arrives, and the stream ends.
	for {
		r, err := watch.Recv()
		if err != nil {
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("the stream ended with %v, want UNAUTHENTICATED", err)
			}
			return
		}
		if ev := r.GetEvent(); !ev.GetCreateTime().AsTime().Before(revoked.GetApiKey().GetRevokeTime().AsTime()) {
			t.Fatalf("after the revocation (%s) the stream got event %s %s made at %s",
				revoked.GetApiKey().GetRevokeTime().AsTime(), ev.GetType(), ev.GetResource(), ev.GetCreateTime().AsTime())
		}
	}
}

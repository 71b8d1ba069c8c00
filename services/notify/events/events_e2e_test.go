package events_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// TestWatchEventsStreamsWhatTheLogHolds: a WatchEvents stream from now
// receives each new event of the caller's tenant, with the id and cursor
// ListEvents gives it, and nothing of another tenant; resuming from a
// cursor sends exactly what came after it.
func TestWatchEventsStreamsWhatTheLogHolds(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	p := env.OpenPool(ctx, env.NewAPIKey("acme"))
	theirs := env.OpenPool(gatewaytest.As("globex"), env.NewAPIKey("globex"))

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := env.Events.WatchEvents(wctx, &crowdgatev1.WatchEventsRequest{Types: []string{"session.started"}})
	if err != nil {
		t.Fatal(err)
	}
	// The stream starts once the server has read its request; the first
	// Recv waits for an event, so land only after the header arrived.
	if _, err := stream.Header(); err != nil {
		t.Fatal(err)
	}
	env.LandSession(gatewaytest.As("globex"), env.StartAssignment(theirs, "toloker-9"))
	sess := env.LandSession(ctx, env.StartAssignment(p, "toloker-1"))
	got, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ev := got.GetEvent()
	if ev.GetType() != "session.started" || ev.GetSession().GetSessionId() != sess.GetSessionId() || ev.GetTenantId() != "default" {
		t.Fatalf("streamed %v, want the default tenant's session.started of %s", ev, sess.GetSessionId())
	}
	list, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: []string{"session.started"}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.GetEvents()); n != 1 || list.GetEvents()[0].GetEventId() != ev.GetEventId() || list.GetEvents()[0].GetCursor() != ev.GetCursor() {
		t.Fatalf("ListEvents %v, want the streamed event with its id and cursor", list.GetEvents())
	}

	// Resume after the cursor: the next event only.
	if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: sess.GetSessionId()}); err != nil {
		t.Fatal(err)
	}
	resumed, err := env.Events.WatchEvents(wctx, &crowdgatev1.WatchEventsRequest{Cursor: ev.GetCursor()})
	if err != nil {
		t.Fatal(err)
	}
	next, err := resumed.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := next.GetEvent(); e.GetType() != "session.ended" || e.GetSession().GetEndReason() != crowdgatev1.EndReason_END_REASON_ENDED {
		t.Errorf("resumed stream sent %v, want the session.ended after the cursor", e)
	}
}

// TestEventRequestsAreChecked: a bad type, cursor, page token or time range is
// INVALID_ARGUMENT naming the field, over gRPC and REST (400); a stream
// with a bad request fails the same way.
func TestEventRequestsAreChecked(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	for field, req := range map[string]*crowdgatev1.ListEventsRequest{
		"types":      {Types: []string{"submission.paid"}},
		"cursor":     {Cursor: "yesterday"},
		"page_token": {PageToken: "abc"},
		"page_size":  {PageSize: -1},
		"end_time":   {StartTime: timestamppb.New(env.Now()), EndTime: timestamppb.New(env.Now().Add(-time.Hour))},
	} {
		_, err := env.Events.ListEvents(ctx, req)
		gatewaytest.WantField(t, err, field)
	}
	code, body := env.REST(http.MethodGet, "/v1/events?types=nothing.*", "")
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "types") {
		t.Errorf("REST bad type = %d %v, want 400 naming types", code, body)
	}
	code, body = env.REST(http.MethodGet, "/v1/events?page_size=5", "")
	if code != http.StatusOK || body["next_page_token"] == "" {
		t.Errorf("REST empty log = %d %v, want 200 with a cursor to poll with", code, body)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := env.Events.WatchEvents(sctx, &crowdgatev1.WatchEventsRequest{Cursor: "x"})
	if err == nil {
		_, err = stream.Recv()
	}
	gatewaytest.WantCode(t, err, codes.InvalidArgument)
}

// TestATenantHoldsAtMostMaxStreamsOpen: each open WatchEvents stream reads
// Redis while it waits, so one tenant holds at most
// CROWDGATE_EVENT_MAX_STREAMS open on a replica; one more is
// RESOURCE_EXHAUSTED, another tenant's is not counted against it, and a
// closed stream makes room. One READ key used to open as many as it
// liked (a thousand cost Redis ten thousand commands a second, idle).
func TestATenantHoldsAtMostMaxStreamsOpen(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) { c.Events.MaxStreams = 2 }})
	open := func(ctx context.Context) (func(), error) {
		ctx, cancel := context.WithCancel(ctx)
		stream, err := env.Events.WatchEvents(ctx, &crowdgatev1.WatchEventsRequest{})
		if err == nil {
			// Live (the header names its cursor), or refused (no header:
			// the status comes with Recv).
			var md metadata.MD
			if md, err = stream.Header(); err == nil && len(md.Get(events.LiveHeader)) == 0 {
				_, err = stream.Recv()
			}
		}
		if err != nil {
			cancel()
			return nil, err
		}
		return func() {
			cancel()
			_, _ = stream.Recv() // the server has seen the stream end
		}, nil
	}
	ctx := env.Ctx()
	first, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first()
	second, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = open(ctx)
	gatewaytest.WantCode(t, err, codes.ResourceExhausted)
	if closeTheirs, err := open(gatewaytest.As("globex")); err != nil {
		t.Errorf("another tenant's first stream: %v", err)
	} else {
		closeTheirs()
	}
	second()
	// The server counts the closed stream out when its handler returns:
	// a new one is let in once it has.
	deadline := time.Now().Add(10 * time.Second)
	for {
		third, err := open(ctx)
		if err == nil {
			third()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one of two streams closed, a new one: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

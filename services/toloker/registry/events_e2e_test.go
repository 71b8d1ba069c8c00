package registry_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	protobuf "google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// allEvents reads the tenant's whole log through ListEvents, page by page
// from the start, as a consumer resuming from its cursor would.
func allEvents(t *testing.T, env *gatewaytest.Env, ctx context.Context, types ...string) []*crowdgatev1.Event {
	t.Helper()
	var out []*crowdgatev1.Event
	cursor := ""
	for {
		resp, err := env.Events.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Types: types, PageToken: cursor, PageSize: 2})
		if err != nil {
			t.Fatalf("ListEvents: %v", err)
		}
		out = append(out, resp.GetEvents()...)
		if len(resp.GetEvents()) == 0 {
			return out
		}
		cursor = resp.GetNextPageToken()
	}
}

// sessionEnds is "session reason" of every session.ended event, sorted,
// and the number of session.started events per session.
func sessionStory(evs []*crowdgatev1.Event) (ends []string, starts map[string]int) {
	starts = map[string]int{}
	for _, ev := range evs {
		s := ev.GetSession()
		switch ev.GetType() {
		case "session.started":
			starts[s.GetSessionId()]++
		case "session.ended":
			ends = append(ends, s.GetSessionId()+" "+s.GetEndReason().String())
		}
	}
	sort.Strings(ends)
	return ends, starts
}

// TestEverySessionRaisesOneStartAndOneEnd: each session's start and end
// are events, once each, with the reason; a session whose Toloker walked
// away raises one EXPIRED end, though two replicas sweep for it.
func TestEverySessionRaisesOneStartAndOneEnd(t *testing.T) {
	clock := fakeclock.New(time.Now().UTC().Truncate(time.Millisecond))
	env := gatewaytest.Start(t, gatewaytest.Options{Clock: clock})
	// A second replica on the same Redis and clock: it sweeps too.
	gatewaytest.Start(t, gatewaytest.Options{Clock: clock, Redis: env.Redis})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := env.OpenPool(ctx, key)

	closed := env.LandSession(ctx, env.StartAssignment(p, "toloker-1"))
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: closed.GetSessionId(), Reward: "0.05", CloseSession: protobuf.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	revoked := env.LandSession(ctx, env.StartAssignment(p, "toloker-2"))
	for range 2 { // ended twice, one event
		if _, err := env.Sessions.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: revoked.GetSessionId(), Reason: crowdgatev1.EndReason_END_REASON_REVOKED}); err != nil {
			t.Fatal(err)
		}
	}
	walked := env.LandSession(ctx, env.StartAssignment(p, "toloker-3"))
	env.Land(walked.GetAssignmentId()) // a repeat click: no new session, no event

	clock.Advance(walked.GetExpireTime().AsTime().Sub(clock.Now()) + time.Second)
	want := []string{
		closed.GetSessionId() + " END_REASON_CLOSE_SESSION",
		revoked.GetSessionId() + " END_REASON_REVOKED",
		walked.GetSessionId() + " END_REASON_EXPIRED",
	}
	sort.Strings(want)
	deadline := time.Now().Add(20 * time.Second)
	var evs []*crowdgatev1.Event
	for {
		evs = allEvents(t, env, ctx, "session.*")
		if ends, _ := sessionStory(evs); len(ends) >= len(want) || time.Now().After(deadline) {
			break
		}
		waitABit()
	}
	ends, starts := sessionStory(evs)
	if diff := cmp.Diff(want, ends); diff != "" {
		t.Errorf("session.ended events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{closed.GetSessionId(): 1, revoked.GetSessionId(): 1, walked.GetSessionId(): 1}, starts); diff != "" {
		t.Errorf("session.started events per session (-want +got):\n%s", diff)
	}
	// Nothing is left for a later sweep to record again: the deadline
	// index is empty once each session's end is recorded.
	if n := env.Redis.Client.ZCard(context.Background(), env.Redis.Prefix+"tolk:{tolk:default}:dl").Val(); n != 0 {
		t.Errorf("%d sessions still wait for their deadline", n)
	}
	for _, ev := range evs {
		if ev.GetTenantId() != "default" || ev.GetResource() != "sessions/"+ev.GetSession().GetSessionId() || len(ev.GetEventId()) != 30 {
			t.Errorf("event %v: tenant, resource or id wrong", ev)
		}
	}
	// Another tenant sees none of them.
	if other := allEvents(t, env, gatewaytest.As("globex")); len(other) != 0 {
		t.Errorf("another tenant reads %d events", len(other))
	}
}

func waitABit() { time.Sleep(50 * time.Millisecond) }

package crowdload

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

func sessionEvent(id, typ, session string, reason crowdgatev1.EndReason) *crowdgatev1.Event {
	return &crowdgatev1.Event{EventId: id, Type: typ, Resource: "sessions/" + session,
		Data: &crowdgatev1.Event_Session{Session: &crowdgatev1.Session{SessionId: session, PoolId: "pool_1", UserId: "u-" + session, EndReason: reason}}}
}

func started(id, session string) *crowdgatev1.Event {
	return sessionEvent(id, "session.started", session, 0)
}

func ended(id, session string) *crowdgatev1.Event {
	return sessionEvent(id, "session.ended", session, crowdgatev1.EndReason_END_REASON_CLOSE_SESSION)
}

func outcome(id, typ, retryID string) *crowdgatev1.Event {
	return &crowdgatev1.Event{EventId: id, Type: typ, Resource: "submissions/s-" + retryID,
		Data: &crowdgatev1.Event_Submission{Submission: &crowdgatev1.Submission{RetryId: retryID, PoolId: "pool_1"}}}
}

func delivered(id, retryID string) *crowdgatev1.Event {
	return outcome(id, "submission.delivered", retryID)
}

func ids(s ...string) map[string]bool {
	out := map[string]bool{}
	for _, id := range s {
		out[id] = true
	}
	return out
}

func TestReconcileEvents(t *testing.T) {
	A, U := OutcomeAccepted, OutcomeUnconfirmed
	// A clean run: two sessions, three submits, all received.
	clean := []*crowdgatev1.Event{
		{EventId: "e0", Type: "pool.opened", Resource: "pools/pool_1", Data: &crowdgatev1.Event_Pool{Pool: &crowdgatev1.Pool{PoolId: "pool_1"}}},
		started("e1", "s1"), started("e2", "s2"),
		delivered("e3", "r1"), delivered("e4", "r2"), delivered("e5", "r3"),
		ended("e6", "s1"), ended("e7", "s2"),
	}
	cleanSent := []Sent{{RetryID: "r1", Outcome: A}, {RetryID: "r2", Outcome: A}, {RetryID: "r3", Outcome: A}}
	all := ids("e0", "e1", "e2", "e3", "e4", "e5", "e6", "e7")
	with := func(evs ...*crowdgatev1.Event) []*crowdgatev1.Event {
		return append(append([]*crowdgatev1.Event(nil), clean...), evs...)
	}
	without := func(drop string) []*crowdgatev1.Event {
		var out []*crowdgatev1.Event
		for _, ev := range clean {
			if ev.GetEventId() != drop {
				out = append(out, ev)
			}
		}
		return out
	}
	type problem struct {
		Kind   ProblemKind
		ID     string
		Detail string
	}
	tests := []struct {
		name     string
		log      []*crowdgatev1.Event
		sent     []Sent
		sessions []string
		totals   *PoolTotals
		webhook  *WebhookInput
		want     []problem
	}{
		{name: "clean", log: clean, sent: cleanSent, sessions: []string{"s1", "s2"},
			totals:  &PoolTotals{Delivered: 3},
			webhook: &WebhookInput{Received: all}},
		{name: "an accepted submit without an outcome event", log: without("e5"), sent: cleanSent, sessions: []string{"s1", "s2"},
			want: []problem{{ProblemEventLog, "r3", "accepted, but no submission.delivered or submission.dead event"}}},
		{name: "a submit delivered and dead", log: with(outcome("e8", "submission.dead", "r1")), sent: cleanSent, sessions: []string{"s1", "s2"},
			want: []problem{{ProblemEventLog, "r1", "2 delivered or dead events (submission.delivered, submission.dead), want one"}}},
		{name: "an unconfirmed submit may have no event, not two", log: with(delivered("e8", "r4"), delivered("e9", "r4")),
			sent: append(cleanSent, Sent{RetryID: "r4", Outcome: U}, Sent{RetryID: "r5", Outcome: U}), sessions: []string{"s1", "s2"},
			want: []problem{{ProblemEventLog, "r4", "2 delivered or dead events (submission.delivered, submission.delivered), want one"}}},
		{name: "an outcome for a submit never sent", log: with(delivered("e8", "r9")), sent: cleanSent, sessions: []string{"s1", "s2"},
			want: []problem{{ProblemEventLog, "r9", "1 event(s) submission.delivered for a submit the platform never sent"}}},
		{name: "another pool's events are not this run's", log: with(&crowdgatev1.Event{EventId: "e8", Type: "submission.delivered",
			Data: &crowdgatev1.Event_Submission{Submission: &crowdgatev1.Submission{RetryId: "r9", PoolId: "pool_2"}}}),
			sent: cleanSent, sessions: []string{"s1", "s2"}},
		{name: "counts unlike the pool's totals", log: clean, sent: cleanSent, sessions: []string{"s1", "s2"},
			totals: &PoolTotals{Delivered: 2, Dead: 1},
			want:   []problem{{ProblemEventLog, "", "the log has 3 submission.delivered and 0 submission.dead events, the pool's totals 2 delivered and 1 dead"}}},
		{name: "a session never ended", log: without("e7"), sent: cleanSent, sessions: []string{"s1", "s2"},
			want: []problem{{ProblemEventLog, "", "session s2: 1 session.started and 0 session.ended events, want one each"}}},
		{name: "a session ended twice under two ids", log: with(ended("e8", "s1")), sent: cleanSent, sessions: []string{"s1", "s2"},
			want: []problem{{ProblemEventLog, "", "session s1: 1 session.started and 2 session.ended events, want one each"}}},
		{name: "a session the platform got but the log does not hold", log: clean, sent: cleanSent, sessions: []string{"s1", "s2", "s3"},
			want: []problem{{ProblemEventLog, "", "session s3: no session.started or session.ended event"}}},
		{name: "an event id twice in the log", log: with(clean[3]), sent: cleanSent, sessions: []string{"s1", "s2"},
			want: []problem{
				{ProblemEventLog, "", "event e3 is in the log 2 times"},
				{ProblemEventLog, "r1", "2 delivered or dead events (submission.delivered, submission.delivered), want one"},
			}},
		{name: "webhook: an event never received, one received that the log lacks", log: clean, sent: cleanSent, sessions: []string{"s1", "s2"},
			webhook: &WebhookInput{Received: ids("e0", "e1", "e2", "e3", "e4", "e5", "e6", "x1")},
			want: []problem{
				{ProblemWebhook, "", "event e7 is in the log but was never received"},
				{ProblemWebhook, "", "event x1 was received but is not in the log"},
			}},
		{name: "webhook: events before the endpoint and of other types need not come", log: clean, sent: cleanSent, sessions: []string{"s1", "s2"},
			webhook: &WebhookInput{Before: ids("e0"), Types: []string{"session.*"}, Received: ids("e1", "e2", "e6", "e7")}},
		{name: "webhook: a bad signature fails the run", log: clean, sent: cleanSent, sessions: []string{"s1", "s2"},
			webhook: &WebhookInput{Received: all, Stats: ReceiverStats{BadSignature: 2, Malformed: 1}},
			want: []problem{
				{ProblemWebhook, "", "2 deliveries failed the Standard Webhooks signature check"},
				{ProblemWebhook, "", "1 deliveries were not an Event whose event_id is the webhook-id"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := ReconcileEvents(EventInput{Log: tt.log, PoolID: "pool_1", Sent: tt.sent, Sessions: tt.sessions, Totals: tt.totals, Webhook: tt.webhook})
			var got []problem
			for _, p := range ps {
				got = append(got, problem{p.Kind, p.RetryID, p.Detail})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

// What ReconcileEvents counts, for the report.
func TestReconcileEventsCounts(t *testing.T) {
	log := []*crowdgatev1.Event{
		started("e1", "s1"), started("e2", "s2"), started("e3", "s3"),
		delivered("e4", "r1"), outcome("e5", "submission.dead", "r2"),
		ended("e6", "s1"), sessionEvent("e7", "session.ended", "s2", crowdgatev1.EndReason_END_REASON_ENDED),
		sessionEvent("e8", "session.ended", "s3", crowdgatev1.EndReason_END_REASON_ENDED),
	}
	c, ps := ReconcileEvents(EventInput{
		Log: log, PoolID: "pool_1", Sessions: []string{"s1", "s2"},
		Sent:    []Sent{{RetryID: "r1", Outcome: OutcomeAccepted}, {RetryID: "r2", Outcome: OutcomeAccepted}},
		Totals:  &PoolTotals{Delivered: 1, Dead: 1},
		Webhook: &WebhookInput{Before: ids("e1"), Types: []string{"session.ended"}, Received: ids("e6", "e7", "e8"), Stats: ReceiverStats{Distinct: 3}},
	})
	if len(ps) != 0 {
		t.Errorf("problems: %v", ps)
	}
	want := EventCheck{
		Events: 8, ByType: map[string]int{"session.started": 3, "session.ended": 3, "submission.delivered": 1, "submission.dead": 1},
		Delivered: 1, Dead: 1, SessionsStarted: 3, SessionsEnded: 3, EndReasons: map[string]int{"CLOSE_SESSION": 1, "ENDED": 2},
		SessionsUnseen: 1,
		Webhook:        &WebhookCheck{Expected: 3, Stats: ReceiverStats{Distinct: 3}},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("check (-want +got):\n%s", diff)
	}
}

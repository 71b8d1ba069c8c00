package crowdload

import (
	"fmt"
	"slices"
	"strings"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// The event problem kinds. Like ProblemMissing, they fail the run once the
// outbox drained, and make it incomplete before (an event may be late, not
// lost).
const (
	// ProblemEventLog: the tenant's event log disagrees with the run: a
	// submission accepted without exactly one submission.delivered or
	// submission.dead event, a session without exactly one
	// session.started and one session.ended, an event id twice, counts
	// unlike the pool's totals.
	ProblemEventLog ProblemKind = "event log"
	// ProblemWebhook: the webhook receiver's distinct webhook-ids are not
	// the log's (an event never received once delivery caught up, or one
	// received that the log does not hold), or a delivery failed its
	// signature check.
	ProblemWebhook ProblemKind = "webhook"
)

// EventInput is what ReconcileEvents compares.
type EventInput struct {
	// Log is the tenant's whole event log, oldest first (ListEvents).
	Log []*crowdgatev1.Event
	// PoolID is the run's pool: only its sessions and submissions are
	// checked.
	PoolID string
	// Sent are the submits the platform sent (RetryID as the gateway
	// answered it).
	Sent []Sent
	// Sessions are the session ids the platform got from the code
	// exchange.
	Sessions []string
	// Totals are the pool's totals after the drain (nil: not compared).
	Totals *PoolTotals
	// Webhook is set when a receiver was registered.
	Webhook *WebhookInput
}

// WebhookInput is the receiver's side of ReconcileEvents.
type WebhookInput struct {
	// Before are the ids in the log before the endpoint was registered:
	// they need not have been delivered.
	Before map[string]bool
	// Types are the endpoint's event types (every type when empty).
	Types []string
	// Received are the webhook-ids the receiver answered 2xx.
	Received map[string]bool
	// Stats are the receiver's counts.
	Stats ReceiverStats
}

// EventCheck is what ReconcileEvents found.
type EventCheck struct {
	// Events counts the log's events; ByType splits them.
	Events int
	ByType map[string]int
	// Delivered and Dead count the pool's submission.delivered and
	// submission.dead events.
	Delivered, Dead int
	// SessionsStarted and SessionsEnded count the pool's session events;
	// EndReasons splits the ends by reason (CLOSE_SESSION, ENDED, ...).
	SessionsStarted, SessionsEnded int
	EndReasons                     map[string]int
	// SessionsUnseen counts sessions in the log the platform never got an
	// id for (a landing whose code exchange failed).
	SessionsUnseen int
	// EndedAtSettle counts sessions the harness ended with EndSession
	// while settling (filled by the runner).
	EndedAtSettle int
	// Webhook is the receiver's comparison (nil without --webhook).
	Webhook *WebhookCheck
}

// WebhookCheck compares the receiver with the log.
type WebhookCheck struct {
	// Expected counts the log's events of the endpoint's types recorded
	// after it was registered; Missing and Extra are the ids not received
	// and received but not in the log, sorted.
	Expected        int
	Missing, Extra  []string
	Stats           ReceiverStats
	CaughtUp        bool
	WaitDescription string
}

// selectsType reports whether the event types select typ (families as
// "submission.*" or "submission.").
func selectsType(types []string, typ string) bool {
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		switch {
		case t == typ:
			return true
		case strings.HasSuffix(t, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(t, "*")):
			return true
		case strings.HasSuffix(t, ".") && strings.HasPrefix(typ, t):
			return true
		}
	}
	return false
}

// ReconcileEvents checks the event log against what the run did and, with
// a receiver, the receiver against the log. It returns what it counted and
// the problems, in the order of their kinds then detail.
func ReconcileEvents(in EventInput) (EventCheck, []Problem) {
	c := EventCheck{Events: len(in.Log), ByType: map[string]int{}, EndReasons: map[string]int{}}
	var problems []Problem
	add := func(k ProblemKind, id, format string, args ...any) {
		problems = append(problems, Problem{Kind: k, RetryID: id, Detail: fmt.Sprintf(format, args...)})
	}
	seen := make(map[string]int, len(in.Log))
	subEvents := map[string][]string{} // retry_id -> types
	type sess struct{ started, ended int }
	sessions := map[string]*sess{}
	sessionOf := func(id string) *sess {
		s := sessions[id]
		if s == nil {
			s = &sess{}
			sessions[id] = s
		}
		return s
	}
	for _, ev := range in.Log {
		seen[ev.GetEventId()]++
		c.ByType[ev.GetType()]++
		switch ev.GetType() {
		case events.TypeSubmissionDelivered, events.TypeSubmissionDead:
			s := ev.GetSubmission()
			if s.GetPoolId() != in.PoolID {
				continue
			}
			subEvents[s.GetRetryId()] = append(subEvents[s.GetRetryId()], ev.GetType())
			if ev.GetType() == events.TypeSubmissionDelivered {
				c.Delivered++
			} else {
				c.Dead++
			}
		case events.TypeSessionStarted, events.TypeSessionEnded:
			s := ev.GetSession()
			if s.GetPoolId() != in.PoolID {
				continue
			}
			st := sessionOf(s.GetSessionId())
			if ev.GetType() == events.TypeSessionStarted {
				st.started++
				c.SessionsStarted++
			} else {
				st.ended++
				c.SessionsEnded++
				c.EndReasons[strings.TrimPrefix(s.GetEndReason().String(), "END_REASON_")]++
			}
		}
	}
	for _, id := range slices.Sorted(mapKeys(seen)) {
		if seen[id] > 1 {
			add(ProblemEventLog, "", "event %s is in the log %d times", id, seen[id])
		}
	}
	// Submissions: exactly one delivered or dead event per accepted
	// submit, at most one per unconfirmed one, none for what was never
	// sent.
	sent := map[string]bool{}
	for _, s := range in.Sent {
		sent[s.RetryID] = true
		evs := subEvents[s.RetryID]
		switch {
		case s.Outcome == OutcomeAccepted && len(evs) == 0:
			add(ProblemEventLog, s.RetryID, "accepted, but no submission.delivered or submission.dead event")
		case len(evs) > 1:
			add(ProblemEventLog, s.RetryID, "%d delivered or dead events (%s), want one", len(evs), strings.Join(evs, ", "))
		}
	}
	for _, id := range slices.Sorted(mapKeys(subEvents)) {
		if !sent[id] {
			add(ProblemEventLog, id, "%d event(s) %s for a submit the platform never sent", len(subEvents[id]), strings.Join(subEvents[id], ", "))
		}
	}
	if t := in.Totals; t != nil {
		if int64(c.Delivered) != t.Delivered || int64(c.Dead) != t.Dead {
			add(ProblemEventLog, "", "the log has %d submission.delivered and %d submission.dead events, the pool's totals %d delivered and %d dead",
				c.Delivered, c.Dead, t.Delivered, t.Dead)
		}
	}
	// Sessions: one started and one ended event each.
	known := map[string]bool{}
	for _, id := range in.Sessions {
		known[id] = true
		if _, ok := sessions[id]; !ok {
			add(ProblemEventLog, "", "session %s: no session.started or session.ended event", id)
		}
	}
	for _, id := range slices.Sorted(mapKeys(sessions)) {
		s := sessions[id]
		if !known[id] {
			c.SessionsUnseen++
		}
		if s.started != 1 || s.ended != 1 {
			add(ProblemEventLog, "", "session %s: %d session.started and %d session.ended events, want one each", id, s.started, s.ended)
		}
	}
	if w := in.Webhook; w != nil {
		wc := &WebhookCheck{Stats: w.Stats}
		inLog := map[string]bool{}
		for _, ev := range in.Log {
			id := ev.GetEventId()
			inLog[id] = true
			if w.Before[id] || !selectsType(w.Types, ev.GetType()) {
				continue
			}
			wc.Expected++
			if !w.Received[id] {
				wc.Missing = append(wc.Missing, id)
			}
		}
		for _, id := range slices.Sorted(mapKeys(w.Received)) {
			if !inLog[id] {
				wc.Extra = append(wc.Extra, id)
			}
		}
		slices.Sort(wc.Missing)
		wc.Missing = slices.Compact(wc.Missing)
		for _, id := range wc.Missing {
			add(ProblemWebhook, "", "event %s is in the log but was never received", id)
		}
		for _, id := range wc.Extra {
			add(ProblemWebhook, "", "event %s was received but is not in the log", id)
		}
		if n := w.Stats.BadSignature; n > 0 {
			add(ProblemWebhook, "", "%d deliveries failed the Standard Webhooks signature check", n)
		}
		if n := w.Stats.Malformed; n > 0 {
			add(ProblemWebhook, "", "%d deliveries were not an Event whose event_id is the webhook-id", n)
		}
		c.Webhook = wc
	}
	slices.SortStableFunc(problems, func(a, b Problem) int {
		return slices.Index(problemOrder, a.Kind) - slices.Index(problemOrder, b.Kind)
	})
	return c, problems
}

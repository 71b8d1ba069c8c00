package submission

import (
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// Submission events. The scripts that deliver, kill and requeue a
// submission write the event's intent to their shard's stream (evq) in the
// same step as the state change, and Relay moves it to the tenant's log,
// so a submission has exactly one submission.delivered event, and one
// submission.dead per death (one more for each operator's retry, with its
// submission.retried).

// outcomeEvents returns the events a delivery and a death of sub at its
// attempt-th attempt would record (the script writes the one that
// applies).
func outcomeEvents(tenantID string, sub *crowdgatev1.Submission, attempt int, at time.Time, o outcome) (delivered, dead []byte, err error) {
	resource := "submissions/" + sub.GetSubmissionId()
	after := proto.CloneOf(sub)
	after.TenantId = tenantID
	after.Attempts = int32(attempt)
	after.LastAttemptTime = timestamppb.New(at)
	after.NextAttemptTime = nil
	if o.kind == outDelivered {
		d := proto.CloneOf(after)
		d.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED
		d.Flags = o.flags
		d.DeliverTime = timestamppb.New(at)
		ev := events.NewEvent(tenantID, events.TypeSubmissionDelivered, resource, at)
		ev.Data = &crowdgatev1.Event_Submission{Submission: d}
		if delivered, err = events.Encode(ev); err != nil {
			return nil, nil, err
		}
	}
	if o.kind == outDead {
		d := proto.CloneOf(after)
		d.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD
		if o.err != nil {
			d.LastError = o.err
		}
		ev := events.NewEvent(tenantID, events.TypeSubmissionDead, resource, at, strconv.Itoa(attempt))
		ev.Data = &crowdgatev1.Event_Submission{Submission: d}
		if dead, err = events.Encode(ev); err != nil {
			return nil, nil, err
		}
	}
	return delivered, dead, nil
}

// retriedEvent is the submission.retried event of a DEAD sub an operator
// queues again at now.
func retriedEvent(sub *crowdgatev1.Submission, now time.Time) ([]byte, error) {
	q := proto.CloneOf(sub)
	q.State = crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED
	q.NextAttemptTime = timestamppb.New(now)
	ev := events.NewEvent(sub.GetTenantId(), events.TypeSubmissionRetried, "submissions/"+sub.GetSubmissionId(), now,
		strconv.FormatInt(now.UnixNano(), 10))
	ev.Data = &crowdgatev1.Event_Submission{Submission: q}
	return events.Encode(ev)
}

// RelayEvents moves the outbox's event intents to the tenants' event logs
// until ctx ends (every replica runs it; each intent becomes one event). It
// reads every shard's intents, more as the shard count grows.
func (s *Service) RelayEvents(ctx context.Context) {
	var streams []string
	s.events.Relay(ctx, func() []string {
		for n := s.knownShards(); len(streams) < n; {
			streams = append(streams, s.st.intentKey(len(streams)))
		}
		return streams
	})
}

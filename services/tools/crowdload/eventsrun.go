package crowdload

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// eventsPageSize is the page size of ListEvents reads (its maximum).
const eventsPageSize = 1000

// linePrefixer writes each line it gets with a prefix, whole.
type linePrefixer struct {
	mu     sync.Mutex
	prefix string
	w      io.Writer
}

func (l *linePrefixer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(p, []byte("\n")) {
		if len(line) > 0 {
			b.WriteString(l.prefix)
			b.Write(line)
		}
	}
	if _, err := l.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// startReceiver starts the run's webhook receiver (--webhook).
func (r *runner) startReceiver() error {
	var print io.Writer
	if r.cfg.WebhookPrint {
		print = &linePrefixer{prefix: "webhook: ", w: r.progress}
	}
	h, err := NewWebhookReceiver(r.cfg.WebhookFailRate, print, r.cfg.Seed)
	if err != nil {
		return err
	}
	r.hook = h
	r.logf("webhook receiver on %s (answers %.0f%% of verified deliveries 503)", h.URL(), 100*r.cfg.WebhookFailRate)
	return nil
}

// registerWebhook notes the events already in the tenant's log, then
// registers the receiver for every event type and gives it the secret.
func (r *runner) registerWebhook(ctx context.Context) error {
	before, _, err := r.readEvents(ctx, "")
	if err != nil {
		return fmt.Errorf("setup: ListEvents: %w", err)
	}
	r.hookBefore = map[string]bool{}
	for _, ev := range before {
		r.hookBefore[ev.GetEventId()] = true
	}
	api, to := r.apis[0], r.cfg.RequestTimeout
	resp, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreateWebhookEndpointResponse, error) {
		return api.CreateWebhookEndpoint(ctx, &crowdgatev1.CreateWebhookEndpointRequest{
			Url: r.hook.URL(), Description: "crowdload " + r.res.RunID,
		})
	})
	if err != nil {
		var ce *callError
		if errors.As(err, &ce) && ce.Code == codes.InvalidArgument && len(r.ownReplicas) == 0 {
			return fmt.Errorf("setup: CreateWebhookEndpoint: %w (external replicas need CROWDGATE_WEBHOOK_ALLOW_PRIVATE=true for a receiver on 127.0.0.1)", err)
		}
		return fmt.Errorf("setup: CreateWebhookEndpoint: %w", err)
	}
	if err := r.hook.SetSecret(resp.GetSecret()); err != nil {
		return err
	}
	r.hookSecret, r.hookEndpoint = resp.GetSecret(), resp.GetEndpoint().GetEndpointId()
	r.hookTypes = resp.GetEndpoint().GetEventTypes()
	r.logf("webhook endpoint %s registered for every event type", resp.GetEndpoint().GetEndpointId())
	return nil
}

// readEvents reads the tenant's log after cursor ("" from the oldest event
// kept) to its end, moving to the next replica on failure; it returns the
// events and the cursor to resume from.
func (r *runner) readEvents(ctx context.Context, cursor string) ([]*crowdgatev1.Event, string, error) {
	var out []*crowdgatev1.Event
	for attempt := 0; ; {
		actx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		resp, err := r.apis[attempt%len(r.apis)].ListEvents(actx, &crowdgatev1.ListEventsRequest{Cursor: cursor, PageSize: eventsPageSize})
		cancel()
		if err != nil {
			if attempt++; attempt < 3*len(r.apis) && retryable(err) && sleepCtx(ctx, 500*time.Millisecond) {
				continue
			}
			return out, cursor, err
		}
		out = append(out, resp.GetEvents()...)
		next := resp.GetNextPageToken()
		// The end: the gateway says so, or (a gateway from before
		// caught_up) the page read nothing.
		end := resp.GetCaughtUp() || next == "" || next == cursor
		cursor = cmp.Or(next, cursor)
		if end {
			return out, cursor, nil
		}
	}
}

// settleEvents runs after the money's drain (--webhook): it ends the
// sessions the run left open (EndSession, reason ENDED: a Toloker who
// failed, or whose work the run did not finish; sessions are otherwise
// ended by the close_session submit), waits up to --webhook-wait for the
// log to hold an end for every session and an outcome for every accepted
// submit, and for the receiver to have every event of the log, then
// reconciles.
func (r *runner) settleEvents(ctx context.Context) {
	begin := time.Now()
	wctx, cancel := context.WithTimeout(ctx, r.cfg.WebhookWait)
	defer cancel()
	byUser := map[string]*toloker{}
	for _, t := range r.tolokers {
		byUser[t.userID] = t
	}
	finished := func(t *toloker) bool {
		if t == nil || t.failed {
			return false
		}
		for _, s := range t.submits {
			if s.outcome != OutcomeAccepted {
				return false
			}
		}
		return true
	}
	sent := r.sent()
	var log []*crowdgatev1.Event
	cursor := ""
	endTried := map[string]bool{}
	endedAtSettle := 0
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var waitingFor string
	var readErr error
	for {
		changed := r.hook.Changed()
		evs, next, err := r.readEvents(wctx, cursor)
		log, cursor, readErr = append(log, evs...), next, err
		// Sessions of the pool and the submits' outcomes so far.
		started, ended := map[string]*crowdgatev1.Session{}, map[string]bool{}
		outcomes := map[string]bool{}
		for _, ev := range log {
			switch ev.GetType() {
			case events.TypeSessionStarted:
				if s := ev.GetSession(); s.GetPoolId() == r.poolID {
					started[s.GetSessionId()] = s
				}
			case events.TypeSessionEnded:
				if s := ev.GetSession(); s.GetPoolId() == r.poolID {
					ended[s.GetSessionId()] = true
				}
			case events.TypeSubmissionDelivered, events.TypeSubmissionDead:
				if s := ev.GetSubmission(); s.GetPoolId() == r.poolID {
					outcomes[s.GetRetryId()] = true
				}
			}
		}
		waitingFor = ""
		for id, s := range started {
			if ended[id] {
				continue
			}
			if finished(byUser[s.GetUserId()]) {
				// Its close_session submit ends it: wait for the event.
				waitingFor = fmt.Sprintf("session.ended of session %s (closed by its last submit)", id)
				continue
			}
			waitingFor = fmt.Sprintf("session.ended of session %s (ended by crowdload)", id)
			if endTried[id] {
				continue
			}
			endTried[id] = true
			resp, err := setupCall(wctx, r.cfg.RequestTimeout, func(ctx context.Context) (*crowdgatev1.EndSessionResponse, error) {
				return r.apis[0].EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: id, Reason: crowdgatev1.EndReason_END_REASON_ENDED})
			})
			var ce *callError
			switch {
			case err == nil && resp.GetSession().GetEndReason() == crowdgatev1.EndReason_END_REASON_ENDED:
				endedAtSettle++
			case err == nil, errors.As(err, &ce) && ce.Code == codes.FailedPrecondition:
				// Already ended (its end's event is on its way).
			default:
				r.res.Incomplete = append(r.res.Incomplete, fmt.Sprintf("could not end session %s: %v", id, err))
			}
		}
		for _, s := range sent {
			if s.Outcome == OutcomeAccepted && !outcomes[s.RetryID] {
				waitingFor = "the outcome event of submit " + s.RetryID
				break
			}
		}
		if waitingFor == "" {
			received := r.hook.AcceptedIDs()
			for _, ev := range log {
				if id := ev.GetEventId(); !r.hookBefore[id] && selectsType(r.hookTypes, ev.GetType()) && !received[id] {
					waitingFor = "the delivery of event " + id + " (" + ev.GetType() + ")"
					break
				}
			}
		}
		if waitingFor == "" && readErr == nil {
			break
		}
		select {
		case <-wctx.Done():
		case <-changed:
		case <-tick.C:
		}
		if wctx.Err() != nil {
			if waitingFor != "" {
				// The read that ran into the deadline says nothing.
				readErr = nil
			}
			break
		}
	}
	// One last full read: the check is on the whole log as it stands.
	full, _, err := r.readEvents(context.WithoutCancel(ctx), "")
	if err != nil {
		r.res.Incomplete = append(r.res.Incomplete, "could not read the event log: "+err.Error())
		return
	}
	in := EventInput{Log: full, PoolID: r.poolID, Sent: sent, Sessions: r.sessionIDs(), Webhook: &WebhookInput{
		Before: r.hookBefore, Types: r.hookTypes, Received: r.hook.AcceptedIDs(), Stats: r.hook.Stats(),
	}}
	if r.res.Drained {
		in.Totals = r.res.Totals
	}
	check, problems := ReconcileEvents(in)
	check.EndedAtSettle = endedAtSettle
	check.Webhook.CaughtUp = waitingFor == "" && readErr == nil
	check.Webhook.WaitDescription = time.Since(begin).Round(time.Millisecond).String()
	if !check.Webhook.CaughtUp {
		what := waitingFor
		if readErr != nil {
			what = "ListEvents: " + readErr.Error()
		}
		r.res.Incomplete = append(r.res.Incomplete, fmt.Sprintf("events did not settle within --webhook-wait=%s (still waiting for %s)", r.cfg.WebhookWait, what))
	}
	r.res.EventCheck = &check
	r.res.Reconciliation.Problems = append(r.res.Reconciliation.Problems, problems...)
	r.res.ReceiverErrors = r.hook.Errors()
}

// sessionIDs are the sessions the platform got from the code exchange.
func (r *runner) sessionIDs() []string {
	var out []string
	for _, t := range r.tolokers {
		if t.sessionID != "" {
			out = append(out, t.sessionID)
		}
	}
	return out
}

package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

func statusCode(err error) codes.Code { return serviceerror.ToStatus(err).Code() }

func TestEveryDeliveryVerifiesWithTheStandardWebhooksLibrary(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	if !strings.HasPrefix(secret, "whsec_") || len(secret) < len("whsec_")+32 {
		t.Fatalf("secret %q is not whsec_ and base64 of 24+ bytes", secret)
	}
	rcv.setSecret(secret)
	f.run(f.svc)
	ev := f.event(events.TypePoolOpened, "pools/pool-1")
	f.waitFor("the delivery", func() bool { return rcv.count() == 1 })

	got := rcv.receipts()[0]
	if got.verified != nil {
		t.Fatalf("the Standard Webhooks library refused the delivery: %v", got.verified)
	}
	// With the timestamp too (the fake clock starts at the real time).
	wh, _ := standardwebhooks.NewWebhook(secret)
	if err := wh.Verify(got.body, got.header); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if got.id != ev.EventId {
		t.Errorf("webhook-id %q, want the event id %q", got.id, ev.EventId)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"event_id": ev.EventId, "type": "pool.opened", "tenant_id": "t1", "resource": "pools/pool-1"},
		map[string]any{"event_id": body["event_id"], "type": body["type"], "tenant_id": body["tenant_id"], "resource": body["resource"]}); diff != "" {
		t.Errorf("body (proto field names) (-want +got):\n%s", diff)
	}
	if _, ok := body["pool"].(map[string]any)["private_name"]; !ok {
		t.Errorf("body's data does not use proto names: %s", got.body)
	}
	f.waitFor("the delivery recorded", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	d := f.deliveries(ep.EndpointId)[0]
	if len(d.Attempts) != 1 || d.Attempts[0].HttpStatus != 200 || d.Attempts[0].Error != "" || d.EventId != ev.EventId || d.EventType != "pool.opened" {
		t.Errorf("delivery record %v", d)
	}
}

func TestRetriesKeepTheWebhookIDAndAreVisible(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	rcv.setStatus(func(n int) int {
		switch n {
		case 1:
			return 503
		case 2:
			return 302 // a redirect is a failure, never followed
		}
		return 204
	})
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	rcv.setSecret(secret)
	f.run(f.svc)
	ev := f.event(events.TypeSubmissionDelivered, "submissions/sub-1")
	f.waitFor("the delivered record", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	var ids []string
	for _, r := range rcv.receipts() {
		if r.verified != nil {
			t.Errorf("attempt refused by the library: %v", r.verified)
		}
		ids = append(ids, r.id)
	}
	if diff := cmp.Diff([]string{ev.EventId, ev.EventId, ev.EventId}, ids); diff != "" {
		t.Errorf("webhook-ids of the attempts (-want +got):\n%s", diff)
	}
	type att struct {
		Status int32
		Error  string
	}
	var atts []att
	for _, a := range f.deliveries(ep.EndpointId)[0].Attempts {
		atts = append(atts, att{a.HttpStatus, a.Error})
		if a.AttemptTime == nil || a.LatencyMs < 0 {
			t.Errorf("attempt without time or latency: %v", a)
		}
	}
	want := []att{{503, "HTTP 503"}, {302, "HTTP 302 (redirects are not followed)"}, {204, ""}}
	if diff := cmp.Diff(want, atts); diff != "" {
		t.Errorf("attempts (-want +got):\n%s", diff)
	}
}

func TestDeadAfterTheSchedule(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.RetrySchedule = []time.Duration{time.Millisecond, 2 * time.Millisecond} })
	rcv := newReceiver(t)
	rcv.setStatus(func(int) int { return 500 })
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	f.run(f.svc)
	f.event(events.TypeSessionStarted, "sessions/s-1")
	f.waitFor("the dead record", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DEAD
	})
	if n := len(f.deliveries(ep.EndpointId)[0].Attempts); n != 3 {
		t.Errorf("%d attempts, want 3 (the first and one per wait)", n)
	}
	if n := rcv.count(); n != 3 {
		t.Errorf("the endpoint got %d requests, want 3", n)
	}
}

func TestAnEventOfferedTwiceIsDeliveredOnceAndTypesFilter(t *testing.T) {
	f := newFixture(t, nil)
	all, subs := newReceiver(t), newReceiver(t)
	f.create(f.ctx, all.srv.URL)
	f.create(f.ctx, subs.srv.URL, "submission.*")
	f.run(f.svc)
	a := f.event(events.TypeSessionStarted, "sessions/s-1")
	b := f.event(events.TypeSubmissionDead, "submissions/sub-1")
	f.log.offer(a) // the log offers it again (at least once)
	c := f.event(events.TypeSubmissionDelivered, "submissions/sub-2")
	f.waitFor("every delivery", func() bool { return all.count() >= 3 && subs.count() >= 2 })
	// A fourth event flushes anything still queued behind it.
	d := f.event(events.TypePoolClosed, "pools/p-1")
	f.waitFor("the last delivery", func() bool { return all.count() >= 4 })
	ids := func(r *receiver) map[string]int {
		out := map[string]int{}
		for _, x := range r.receipts() {
			out[x.id]++
		}
		return out
	}
	if diff := cmp.Diff(map[string]int{a.EventId: 1, b.EventId: 1, c.EventId: 1, d.EventId: 1}, ids(all)); diff != "" {
		t.Errorf("all types (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{b.EventId: 1, c.EventId: 1}, ids(subs)); diff != "" {
		t.Errorf("submission.* (-want +got):\n%s", diff)
	}
}

func TestRotationSignsWithBothSecretsForADay(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	ep, oldSecret := f.create(f.ctx, rcv.srv.URL)
	f.run(f.svc)
	rot, err := f.svc.RotateWebhookSecret(f.ctx, &crowdgatev1.RotateWebhookSecretRequest{EndpointId: ep.EndpointId})
	if err != nil {
		t.Fatal(err)
	}
	newSecret := rot.Secret
	if newSecret == oldSecret || !strings.HasPrefix(newSecret, "whsec_") {
		t.Fatalf("rotated secret %q", newSecret)
	}
	if got, want := rot.PreviousSecretExpireTime.AsTime(), f.clock.Now().Add(24*time.Hour); !got.Equal(want.Truncate(time.Millisecond)) && !got.Equal(want) {
		t.Errorf("previous secret expires %v, want %v", got, want)
	}
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the delivery", func() bool { return rcv.count() == 1 })
	first := rcv.receipts()[0]
	if n := len(strings.Fields(first.signature)); n != 2 {
		t.Fatalf("webhook-signature %q has %d signatures during the overlap, want 2", first.signature, n)
	}
	for name, s := range map[string]string{"old": oldSecret, "new": newSecret} {
		wh, _ := standardwebhooks.NewWebhook(s)
		if err := wh.Verify(first.body, first.header); err != nil {
			t.Errorf("the %s secret does not verify during the overlap: %v", name, err)
		}
	}
	// After the overlap only the new secret signs.
	f.clock.Advance(25 * time.Hour)
	f.event(events.TypePoolClosed, "pools/p-1")
	f.waitFor("the second delivery", func() bool { return rcv.count() == 2 })
	second := rcv.receipts()[1]
	if n := len(strings.Fields(second.signature)); n != 1 {
		t.Errorf("webhook-signature %q after the overlap, want one signature", second.signature)
	}
	whNew, _ := standardwebhooks.NewWebhook(newSecret)
	whOld, _ := standardwebhooks.NewWebhook(oldSecret)
	if err := whNew.VerifyIgnoringTimestamp(second.body, second.header); err != nil {
		t.Errorf("the new secret: %v", err)
	}
	if err := whOld.VerifyIgnoringTimestamp(second.body, second.header); err == nil {
		t.Errorf("the old secret still verifies after the overlap")
	}
}

// TestADisabledEventThatCouldNotBeRecordedIsRecordedLater: the log
// refuses the webhook_endpoint.disabled event when the endpoint is
// disabled; it used to be tried three times at once and then lost for good
// (every later failure sees the endpoint disabled already). The disable
// marks the event owed: the tenant's next event, or enabling the endpoint
// again, records it, once.
func TestADisabledEventThatCouldNotBeRecordedIsRecordedLater(t *testing.T) {
	for _, via := range []string{"the tenant's next event", "enabling it again", "deleting it"} {
		t.Run(via, func(t *testing.T) {
			f := newFixture(t, func(c *Config) {
				c.Settings.DisableAfter = time.Hour
				c.Settings.RetrySchedule = []time.Duration{time.Hour}
			})
			rcv := newReceiver(t)
			rcv.setStatus(func(int) int { return 500 })
			ep, _ := f.create(f.ctx, rcv.srv.URL)
			f.run(f.svc)
			f.event(events.TypePoolOpened, "pools/p-1")
			f.waitFor("the endpoint marked failing", func() bool {
				r, err := f.svc.st.getEndpoint(f.ctx, "t1", ep.EndpointId)
				return err == nil && !r.failingSince.IsZero()
			})
			f.clock.Advance(61 * time.Minute)
			f.log.refuseType(events.TypeWebhookEndpointDisabled)
			f.event(events.TypePoolClosed, "pools/p-1")
			f.waitFor("the endpoint disabled", func() bool {
				r, err := f.svc.st.getEndpoint(f.ctx, "t1", ep.EndpointId)
				return err == nil && r.ep.GetState() == crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED
			})
			f.waitFor("the recording to give up", func() bool {
				return strings.Count(f.logs.String(), "could not record webhook_endpoint.disabled") >= 3
			})
			if n := len(f.log.ofType(events.TypeWebhookEndpointDisabled)); n != 0 {
				t.Fatalf("%d disabled events while the log refuses them", n)
			}
			deleteIt := func() error {
				_, err := f.svc.DeleteWebhookEndpoint(f.ctx, &crowdgatev1.DeleteWebhookEndpointRequest{EndpointId: ep.EndpointId})
				return err
			}
			if via == "deleting it" {
				// The event cannot be recorded yet: the delete, which would
				// lose it, is refused, and the endpoint stays.
				if err := deleteIt(); statusCode(err) != codes.Unavailable {
					t.Fatalf("a delete while the owed event cannot be recorded: %v, want UNAVAILABLE", err)
				}
				if _, err := f.svc.st.getEndpoint(f.ctx, "t1", ep.EndpointId); err != nil {
					t.Fatalf("the endpoint is gone after a refused delete: %v", err)
				}
			}
			f.log.refuseType("")
			switch via {
			case "the tenant's next event":
				f.event(events.TypeSessionStarted, "sessions/s-1")
			case "enabling it again":
				if _, err := f.svc.UpdateWebhookEndpoint(f.ctx, &crowdgatev1.UpdateWebhookEndpointRequest{
					Endpoint:   &crowdgatev1.WebhookEndpoint{EndpointId: ep.EndpointId, State: crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
				}); err != nil {
					t.Fatal(err)
				}
			case "deleting it":
				if err := deleteIt(); err != nil {
					t.Fatal(err)
				}
				if n := len(f.log.ofType(events.TypeWebhookEndpointDisabled)); n != 1 {
					t.Fatalf("%d disabled events once the endpoint is deleted, want 1", n)
				}
				if _, err := f.svc.st.getEndpoint(f.ctx, "t1", ep.EndpointId); err == nil {
					t.Fatal("the endpoint is still stored after its delete")
				}
				return
			}
			f.waitFor("the disabled event", func() bool { return len(f.log.ofType(events.TypeWebhookEndpointDisabled)) == 1 })
			if got := f.log.ofType(events.TypeWebhookEndpointDisabled)[0].GetWebhookEndpoint(); got.GetState() != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED {
				t.Errorf("the event's endpoint is %v, want DISABLED", got.GetState())
			}
			f.waitFor("the mark cleared", func() bool {
				r, err := f.svc.st.getEndpoint(f.ctx, "t1", ep.EndpointId)
				return err == nil && r.disabledSince.IsZero()
			})
		})
	}
}

// TestARotationSentTwiceKeepsTheOriginalSecretSigning: a rotation sent
// again (its answer lost, or a double click) used to make the first
// rotation's secret the previous one and drop the original at once, which
// receivers still use. Every secret rotated out signs for its own day; a
// third rotation while two still sign is refused.
func TestARotationSentTwiceKeepsTheOriginalSecretSigning(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	ep, original := f.create(f.ctx, rcv.srv.URL)
	f.run(f.svc)
	rotate := func() (*crowdgatev1.RotateWebhookSecretResponse, error) {
		return f.svc.RotateWebhookSecret(f.ctx, &crowdgatev1.RotateWebhookSecretRequest{EndpointId: ep.EndpointId})
	}
	lost, err := rotate() // its answer never reached the caller
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	second, err := rotate()
	if err != nil {
		t.Fatal(err)
	}
	verifies := func(r receipt) map[string]bool {
		out := map[string]bool{}
		for name, s := range map[string]string{"original": original, "lost": lost.Secret, "second": second.Secret} {
			wh, _ := standardwebhooks.NewWebhook(s)
			out[name] = wh.VerifyIgnoringTimestamp(r.body, r.header) == nil
		}
		return out
	}
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the delivery", func() bool { return rcv.count() == 1 })
	if diff := cmp.Diff(map[string]bool{"original": true, "lost": true, "second": true}, verifies(rcv.receipts()[0])); diff != "" {
		t.Errorf("secrets that verify a minute after the second rotation (-want +got):\n%s", diff)
	}
	if _, err := rotate(); statusCode(err) != codes.FailedPrecondition {
		t.Errorf("a third rotation while two rotated-out secrets sign: %v, want FAILED_PRECONDITION", err)
	}
	// The original's day ends a minute before the lost one's.
	f.clock.Advance(24*time.Hour - 30*time.Second)
	f.event(events.TypePoolClosed, "pools/p-1")
	f.waitFor("the second delivery", func() bool { return rcv.count() == 2 })
	if diff := cmp.Diff(map[string]bool{"original": false, "lost": true, "second": true}, verifies(rcv.receipts()[1])); diff != "" {
		t.Errorf("secrets that verify after the original's day (-want +got):\n%s", diff)
	}
	if _, err := rotate(); err != nil {
		t.Errorf("a rotation once only one rotated-out secret signs: %v", err)
	}
}

func TestAnEndpointFailingForTheDisablePeriodIsDisabledWithAnEvent(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Settings.DisableAfter = time.Hour
		c.Settings.RetrySchedule = []time.Duration{time.Hour} // no second attempt during the test
	})
	rcv := newReceiver(t)
	rcv.setStatus(func(int) int { return 500 })
	other := newReceiver(t)
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	watcher, _ := f.create(f.ctx, other.srv.URL, events.TypeWebhookEndpointDisabled)
	f.run(f.svc)
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the first failure", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && len(ds[0].Attempts) == 1
	})
	// The worker marks the endpoint failing after it records the attempt:
	// the clock moves on only once it has.
	f.waitFor("the endpoint marked failing", func() bool {
		r, err := f.svc.st.getEndpoint(f.ctx, ep.GetTenantId(), ep.GetEndpointId())
		return err == nil && !r.failingSince.IsZero()
	})
	f.clock.Advance(30 * time.Minute)
	f.event(events.TypePoolClosed, "pools/p-1")
	f.waitFor("the second failure", func() bool { return rcv.count() == 2 })
	f.waitFor("the second failure recorded", func() bool {
		n := 0
		for _, d := range f.deliveries(ep.EndpointId) {
			n += len(d.Attempts)
		}
		return n == 2
	})
	if got, _ := f.svc.GetWebhookEndpoint(f.ctx, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: ep.EndpointId}); got.Endpoint.State != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED {
		t.Fatalf("disabled after 30 minutes of failures, with DisableAfter 1h")
	}
	f.clock.Advance(31 * time.Minute)
	f.event(events.TypeProjectArchived, "projects/prj-1")
	f.waitFor("the disabled event", func() bool { return len(f.log.ofType(events.TypeWebhookEndpointDisabled)) == 1 })
	ev := f.log.ofType(events.TypeWebhookEndpointDisabled)[0]
	got := ev.GetWebhookEndpoint()
	if ev.Resource != "webhook_endpoints/"+ep.EndpointId || got.GetEndpointId() != ep.EndpointId ||
		got.GetState() != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED || got.GetDisabledReason() == "" {
		t.Errorf("disabled event %v", ev)
	}
	stored, err := f.svc.GetWebhookEndpoint(f.ctx, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: ep.EndpointId})
	if err != nil || stored.Endpoint.State != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED {
		t.Fatalf("endpoint after the period: %v %v", stored, err)
	}
	// The other endpoint hears of it, signed like any event.
	f.waitFor("the watcher's delivery", func() bool { return other.count() == 1 })
	if other.receipts()[0].id != ev.EventId {
		t.Errorf("the watcher got %q", other.receipts()[0].id)
	}
	_ = watcher
	// A disabled endpoint gets nothing more, and redelivery is refused.
	before := rcv.count()
	last := f.event(events.TypeSessionStarted, "sessions/s-9")
	_, err = f.svc.RedeliverWebhookEvent(f.ctx, &crowdgatev1.RedeliverWebhookEventRequest{EndpointId: ep.EndpointId, EventId: last.EventId})
	if statusCode(err) != codes.FailedPrecondition {
		t.Errorf("redelivery to a disabled endpoint: %v", err)
	}
	// The event was fanned out while the endpoint was disabled.
	f.waitFor("the fan-out of the event", func() bool { return f.log.wasHandled(last.EventId) })
	// Enabled again, it receives and its failure record is cleared.
	rcv.setStatus(nil)
	if _, err := f.svc.UpdateWebhookEndpoint(f.ctx, &crowdgatev1.UpdateWebhookEndpointRequest{
		Endpoint:   &crowdgatev1.WebhookEndpoint{EndpointId: ep.EndpointId, State: crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
	}); err != nil {
		t.Fatal(err)
	}
	ended := f.event(events.TypeSessionEnded, "sessions/s-9")
	f.waitFor("a delivery after enabling", func() bool {
		rs := rcv.receipts()
		return len(rs) > before && rs[len(rs)-1].id == ended.EventId
	})
	// The log is followed in order: session.started, appended while the
	// endpoint was disabled, was fanned out before session.ended and
	// skipped.
	for _, r := range rcv.receipts()[before:] {
		if r.id == last.EventId {
			t.Errorf("the disabled endpoint received %s", last.Type)
		}
	}
}

func TestOperatorRedelivery(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	rcv.setSecret(secret)
	f.run(f.svc)
	start := f.clock.Now()
	a := f.event(events.TypePoolOpened, "pools/p-1")
	b := f.event(events.TypePoolClosed, "pools/p-1")
	f.waitFor("both deliveries", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 2 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED &&
			ds[1].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	resp, err := f.svc.RedeliverWebhookEvent(f.ctx, &crowdgatev1.RedeliverWebhookEventRequest{EndpointId: ep.EndpointId, EventId: a.EventId})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Delivery.GetEventId() != a.EventId {
		t.Errorf("redelivery answered %v", resp.Delivery)
	}
	f.waitFor("the redelivery", func() bool { return rcv.count() == 3 })
	if got := rcv.receipts()[2]; got.id != a.EventId || got.verified != nil {
		t.Errorf("redelivered %q (verified: %v), want %q", got.id, got.verified, a.EventId)
	}
	f.waitFor("the redelivery settled", func() bool {
		for _, d := range f.deliveries(ep.EndpointId) {
			if d.EventId == a.EventId {
				return d.State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED && len(d.Attempts) == 2
			}
		}
		return false
	})
	all, err := f.svc.RedeliverWebhookEvents(f.ctx, &crowdgatev1.RedeliverWebhookEventsRequest{EndpointId: ep.EndpointId, StartTime: timestamppb.New(start)})
	if err != nil || all.Queued != 2 {
		t.Fatalf("RedeliverWebhookEvents: %v %v, want 2 queued", all, err)
	}
	f.waitFor("both redelivered", func() bool { return rcv.count() == 5 })
	got := map[string]int{}
	for _, r := range rcv.receipts() {
		got[r.id]++
	}
	if diff := cmp.Diff(map[string]int{a.EventId: 3, b.EventId: 2}, got); diff != "" {
		t.Errorf("receipts (-want +got):\n%s", diff)
	}
	_, err = f.svc.RedeliverWebhookEvent(f.ctx, &crowdgatev1.RedeliverWebhookEventRequest{EndpointId: ep.EndpointId, EventId: events.ID("never")})
	if statusCode(err) != codes.NotFound {
		t.Errorf("redelivery of an unknown event: %v", err)
	}
	_, err = f.svc.RedeliverWebhookEvents(f.ctx, &crowdgatev1.RedeliverWebhookEventsRequest{EndpointId: ep.EndpointId})
	if statusCode(err) != codes.InvalidArgument || !strings.Contains(serviceerror.ToStatus(err).Message(), "start_time") {
		t.Errorf("without start_time: %v", err)
	}
}

func TestTenantsSeeAndChangeOnlyTheirOwnEndpoints(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	other := tenant.WithID(context.Background(), "t2")
	s := f.svc
	id := ep.EndpointId
	for name, call := range map[string]func() error{
		"Get": func() error {
			_, err := s.GetWebhookEndpoint(other, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: id})
			return err
		},
		"Update": func() error {
			_, err := s.UpdateWebhookEndpoint(other, &crowdgatev1.UpdateWebhookEndpointRequest{Endpoint: &crowdgatev1.WebhookEndpoint{EndpointId: id, Description: "x"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
			return err
		},
		"Delete": func() error {
			_, err := s.DeleteWebhookEndpoint(other, &crowdgatev1.DeleteWebhookEndpointRequest{EndpointId: id})
			return err
		},
		"Rotate": func() error {
			_, err := s.RotateWebhookSecret(other, &crowdgatev1.RotateWebhookSecretRequest{EndpointId: id})
			return err
		},
		"ListDeliveries": func() error {
			_, err := s.ListWebhookDeliveries(other, &crowdgatev1.ListWebhookDeliveriesRequest{EndpointId: id})
			return err
		},
		"Redeliver": func() error {
			_, err := s.RedeliverWebhookEvent(other, &crowdgatev1.RedeliverWebhookEventRequest{EndpointId: id, EventId: events.ID("x")})
			return err
		},
		"RedeliverAll": func() error {
			_, err := s.RedeliverWebhookEvents(other, &crowdgatev1.RedeliverWebhookEventsRequest{EndpointId: id, StartTime: timestamppb.Now()})
			return err
		},
	} {
		if c := statusCode(call()); c != codes.NotFound {
			t.Errorf("%s of another tenant's endpoint: %v, want NotFound", name, c)
		}
	}
	list, err := s.ListWebhookEndpoints(other, &crowdgatev1.ListWebhookEndpointsRequest{})
	if err != nil || len(list.Endpoints) != 0 {
		t.Errorf("t2 lists %v %v", list, err)
	}
	// Another tenant's events never reach t1's endpoint.
	f.run(s)
	f.eventFor("t2", events.TypePoolOpened, "pools/p-2")
	mine := f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("t1's event", func() bool { return rcv.count() >= 1 })
	for _, r := range rcv.receipts() {
		if r.id != mine.EventId {
			t.Errorf("t1's endpoint got %q", r.id)
		}
	}
	if got, err := s.GetWebhookEndpoint(f.ctx, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: id}); err != nil || got.Endpoint.TenantId != "t1" {
		t.Errorf("t1's own Get: %v %v", got, err)
	}
}

// Queuing is one code path, and it never sends one tenant's event to
// another tenant's endpoint, whichever caller paired them: the pair is
// left out (and logged), the rest of the batch is queued.
func TestAnEventIsNeverQueuedForAnotherTenantsEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	mine := &crowdgatev1.Event{EventId: events.ID("mine"), TenantId: "t1", Type: events.TypePoolOpened, Resource: "pools/p-1"}
	theirs := &crowdgatev1.Event{EventId: events.ID("theirs"), TenantId: "t2", Type: events.TypePoolOpened, Resource: "pools/p-2"}
	n, err := f.svc.enqueue(f.ctx, []delivery{{ep, theirs}, {ep, mine}}, false)
	if err != nil || n != 1 {
		t.Fatalf("enqueue = %d, %v; want 1 (t1's own event), nil", n, err)
	}
	var got []string
	for _, d := range f.deliveries(ep.EndpointId) {
		got = append(got, d.GetEventId())
	}
	if diff := cmp.Diff([]string{mine.EventId}, got); diff != "" {
		t.Errorf("t1's endpoint's deliveries (-want +got):\n%s", diff)
	}
	if !strings.Contains(f.logs.String(), "another tenant's endpoint") {
		t.Error("the pair left out was not logged")
	}
}

func TestEndpointManagementNeedsTheAdminScope(t *testing.T) {
	f := newFixture(t, nil)
	write := access.WithPrincipal(context.Background(), &access.Principal{Kind: access.KindAPIKey, Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE, Tenant: "t1"})
	_, err := f.svc.CreateWebhookEndpoint(write, &crowdgatev1.CreateWebhookEndpointRequest{Url: "http://127.0.0.1:1/"})
	if statusCode(err) != codes.PermissionDenied {
		t.Errorf("Create with a WRITE key: %v", err)
	}
	admin := access.WithPrincipal(context.Background(), &access.Principal{Kind: access.KindAPIKey, Scope: crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN, Tenant: "t1"})
	if _, err := f.svc.CreateWebhookEndpoint(admin, &crowdgatev1.CreateWebhookEndpointRequest{Url: "http://127.0.0.1:1/"}); err != nil {
		t.Errorf("Create with an ADMIN key: %v", err)
	}
}

func TestEndpointCRUDAndPaging(t *testing.T) {
	f := newFixture(t, nil)
	var ids []string
	for range 5 {
		ep, _ := f.create(f.ctx, "https://hooks.example/in")
		ids = append(ids, ep.EndpointId)
		f.clock.Advance(time.Millisecond)
	}
	var got []string
	token := ""
	for {
		resp, err := f.svc.ListWebhookEndpoints(f.ctx, &crowdgatev1.ListWebhookEndpointsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range resp.Endpoints {
			got = append(got, ep.EndpointId)
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("paged list (-want +got):\n%s", diff)
	}
	if _, err := f.svc.ListWebhookEndpoints(f.ctx, &crowdgatev1.ListWebhookEndpointsRequest{PageToken: "made-up"}); statusCode(err) != codes.InvalidArgument {
		t.Errorf("made-up page token: %v", err)
	}
	up, err := f.svc.UpdateWebhookEndpoint(f.ctx, &crowdgatev1.UpdateWebhookEndpointRequest{
		Endpoint: &crowdgatev1.WebhookEndpoint{EndpointId: ids[0], Url: "https://hooks.example/v2", EventTypes: []string{"pool.*"}, Description: "new",
			State: crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_DISABLED},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"https://hooks.example/v2", "pool.*", "new", "WEBHOOK_ENDPOINT_STATE_DISABLED", "disabled by an operator"},
		[]string{up.Endpoint.Url, strings.Join(up.Endpoint.EventTypes, ","), up.Endpoint.Description, up.Endpoint.State.String(), up.Endpoint.DisabledReason}); diff != "" {
		t.Errorf("updated (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name  string
		req   *crowdgatev1.UpdateWebhookEndpointRequest
		field string
	}{
		{"bad type", &crowdgatev1.UpdateWebhookEndpointRequest{Endpoint: &crowdgatev1.WebhookEndpoint{EndpointId: ids[0], EventTypes: []string{"nope"}},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"event_types"}}}, "endpoint.event_types"},
		{"private url", &crowdgatev1.UpdateWebhookEndpointRequest{Endpoint: &crowdgatev1.WebhookEndpoint{EndpointId: ids[0], Url: "ftp://x"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"url"}}}, "endpoint.url"},
		{"mask", &crowdgatev1.UpdateWebhookEndpointRequest{Endpoint: &crowdgatev1.WebhookEndpoint{EndpointId: ids[0]},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tenant_id"}}}, "update_mask"},
	} {
		_, err := f.svc.UpdateWebhookEndpoint(f.ctx, tc.req)
		if fieldOf(err) != tc.field {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := f.svc.DeleteWebhookEndpoint(f.ctx, &crowdgatev1.DeleteWebhookEndpointRequest{EndpointId: ids[1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.GetWebhookEndpoint(f.ctx, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: ids[1]}); statusCode(err) != codes.NotFound {
		t.Errorf("Get after Delete: %v", err)
	}
	if _, err := f.svc.DeleteWebhookEndpoint(f.ctx, &crowdgatev1.DeleteWebhookEndpointRequest{EndpointId: ids[1]}); statusCode(err) != codes.NotFound {
		t.Errorf("Delete twice: %v", err)
	}
}

// fieldOf is the field an INVALID_ARGUMENT names.
func fieldOf(err error) string {
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &ia) {
		return ia.Field
	}
	return ""
}

func TestTheSecretIsNeverReturnedLoggedOrStoredInClear(t *testing.T) {
	f := newFixture(t, nil)
	rcv := newReceiver(t)
	rcv.setStatus(func(n int) int { return []int{500, 200}[min(n-1, 1)] })
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	rot, err := f.svc.RotateWebhookSecret(f.ctx, &crowdgatev1.RotateWebhookSecretRequest{EndpointId: ep.EndpointId})
	if err != nil {
		t.Fatal(err)
	}
	f.run(f.svc)
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the delivery", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	var seen []string
	get, _ := f.svc.GetWebhookEndpoint(f.ctx, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: ep.EndpointId})
	list, _ := f.svc.ListWebhookEndpoints(f.ctx, &crowdgatev1.ListWebhookEndpointsRequest{})
	dels, _ := f.svc.ListWebhookDeliveries(f.ctx, &crowdgatev1.ListWebhookDeliveriesRequest{EndpointId: ep.EndpointId})
	up, _ := f.svc.UpdateWebhookEndpoint(f.ctx, &crowdgatev1.UpdateWebhookEndpointRequest{Endpoint: &crowdgatev1.WebhookEndpoint{EndpointId: ep.EndpointId, Description: "d"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}}})
	for _, b := range [][]byte{mustJSON(t, get), mustJSON(t, list), mustJSON(t, dels), mustJSON(t, up), mustJSON(t, rot.Endpoint)} {
		seen = append(seen, string(b))
	}
	seen = append(seen, f.logs.String())
	// Everything stored.
	keys, err := f.redis.Client.Keys(f.ctx, f.redis.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		dump, err := f.redis.Client.Dump(f.ctx, k).Result()
		if err == nil {
			seen = append(seen, dump)
		}
	}
	for _, s := range []string{secret, rot.Secret} {
		raw := strings.TrimPrefix(s, "whsec_")
		for i, text := range seen {
			if strings.Contains(text, raw) {
				t.Errorf("a secret appears in output %d", i)
			}
		}
	}
	if !strings.Contains(f.logs.String(), "attempt failed") {
		t.Errorf("the failed attempt was not logged: the log check saw nothing")
	}
}

func mustJSON(t *testing.T, m protoMessage) []byte {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResealKeepsSecretsUsableAfterTheOldKeyIsDropped(t *testing.T) {
	f := newFixture(t, nil)
	oldKey, newKey := secretbox.NewRandomKey(), secretbox.NewRandomKey()
	boxOf := func(keys ...[]byte) *secretbox.Box {
		b, err := secretbox.NewRing(keys...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	f.box = boxOf(oldKey)
	f.svc = f.newService(nil)
	rcv := newReceiver(t)
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	rcv.setSecret(secret)
	if _, err := f.svc.RotateWebhookSecret(f.ctx, &crowdgatev1.RotateWebhookSecretRequest{EndpointId: ep.EndpointId}); err != nil {
		t.Fatal(err)
	}
	f.box = boxOf(newKey, oldKey)
	counts, err := f.newService(nil).Reseal(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(secretbox.ResealCounts{Resealed: 2}, counts); diff != "" {
		t.Errorf("first reseal (-want +got):\n%s", diff)
	}
	if counts, _ := f.newService(nil).Reseal(f.ctx); counts != (secretbox.ResealCounts{Current: 2}) {
		t.Errorf("second reseal: %+v, want both current", counts)
	}
	f.box = boxOf(newKey)
	f.svc = f.newService(nil)
	f.run(f.svc)
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the delivery", func() bool { return rcv.count() == 1 })
	if err := rcv.receipts()[0].verified; err != nil {
		t.Errorf("after the reseal the old secret's signature does not verify: %v", err)
	}
}

func TestABigEventIsSentWithoutItsData(t *testing.T) {
	ev := &crowdgatev1.Event{EventId: events.ID("big"), Type: events.TypeProjectArchived, TenantId: "t1", Resource: "projects/p",
		Data: &crowdgatev1.Event_Project{Project: &crowdgatev1.Project{ProjectId: "p", PublicInstructions: strings.Repeat("x", MaxBodyBytes)}}}
	b, err := Body(ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxBodyBytes || strings.Contains(string(b), "public_instructions") || !strings.Contains(string(b), ev.EventId) {
		t.Errorf("big event's body: %d bytes", len(b))
	}
	small := &crowdgatev1.Event{EventId: events.ID("small"), Type: events.TypeProjectArchived, TenantId: "t1",
		Data: &crowdgatev1.Event_Project{Project: &crowdgatev1.Project{ProjectId: "p"}}}
	if b, _ := Body(small); !strings.Contains(string(b), `"project_id"`) {
		t.Errorf("small event's body lost its data: %s", b)
	}
}

func TestAttemptErrorsNameNoAddress(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.RetrySchedule = []time.Duration{time.Hour} })
	rcv := newReceiver(t)
	url := rcv.srv.URL
	rcv.srv.Close() // nothing listens there any more
	ep, _ := f.create(f.ctx, url+"/hook?token=s3cr3t")
	f.run(f.svc)
	f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the failed attempt", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && len(ds[0].Attempts) == 1
	})
	a := f.deliveries(ep.EndpointId)[0].Attempts[0]
	if a.Error != "connection refused" || a.HttpStatus != 0 {
		t.Errorf("attempt %v, want connection refused", a)
	}
	host := strings.TrimPrefix(url, "http://")
	if logs := f.logs.String(); strings.Contains(logs, host) || strings.Contains(logs, "s3cr3t") {
		t.Errorf("the logs name the endpoint's address or query")
	}
}

func TestAFailureJudgedOnAStaleReadDoesNotDisableAnEndpointFailingSinceMoments(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.DisableAfter = time.Hour })
	ep, _ := f.create(f.ctx, "https://hooks.example.com/in")
	// An attempt read the endpoint when its failures had started two
	// hours ago. While it ran, another attempt succeeded (the failures
	// ended) and a third failed: the endpoint has been failing for a
	// minute when the first attempt's failure is recorded.
	r, err := f.svc.st.getEndpoint(f.ctx, "t1", ep.GetEndpointId())
	if err != nil {
		t.Fatal(err)
	}
	r.failingSince = f.clock.Now().Add(-2 * time.Hour)
	key := f.svc.st.endpointKey("t1", ep.GetEndpointId())
	if err := f.redis.Client.HSet(f.ctx, key, "fs", strconv.FormatInt(f.clock.Now().Add(-time.Minute).UnixMilli(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	f.svc.failed(f.ctx, r, f.clock.Now())
	got, err := f.svc.GetWebhookEndpoint(f.ctx, &crowdgatev1.GetWebhookEndpointRequest{EndpointId: ep.GetEndpointId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetEndpoint().GetState() != crowdgatev1.WebhookEndpointState_WEBHOOK_ENDPOINT_STATE_ENABLED {
		t.Errorf("endpoint %v after a stale failure; want it enabled: it has failed for a minute of the hour", got.GetEndpoint().GetState())
	}
	if n := len(f.log.ofType(events.TypeWebhookEndpointDisabled)); n != 0 {
		t.Errorf("%d webhook_endpoint.disabled events", n)
	}
}

// slowSettlements is a Redis hook that holds every pipeline or command
// running the outbox's settle script for a while before sending it.
type slowSettlements struct {
	settle redistest.Script
	delay  time.Duration
}

func newSlowSettlements(t *testing.T, delay time.Duration) *slowSettlements {
	t.Helper()
	return &slowSettlements{settle: redistest.ReadScript(t, "../../platform/outbox/lua/settle.lua"), delay: delay}
}

func (h *slowSettlements) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *slowSettlements) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.settle.Runs(cmd) {
			time.Sleep(h.delay) // the settlement is slow to reach Redis
		}
		return next(ctx, cmd)
	}
}

func (h *slowSettlements) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if h.settle.Runs(c) {
				time.Sleep(h.delay) // the settlement is slow to reach Redis
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestRunReturnsOnlyOnceTheAttemptsItMadeAreRecorded: an attempt is
// recorded beside the worker's next claim, not before the worker moves
// on; a replica shutting down must still record every attempt it made
// before Run returns (an unrecorded one would be sent again by another
// replica), however slowly Redis takes the record.
func TestRunReturnsOnlyOnceTheAttemptsItMadeAreRecorded(t *testing.T) {
	r := redistest.New(t)
	hooked := r.HookedClient(t, newSlowSettlements(t, 300*time.Millisecond))
	f := newFixture(t, func(c *Config) { c.Redis, c.Prefix = hooked, r.Prefix })
	rcv := newReceiver(t)
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	rcv.setSecret(secret)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The replica is told to stop while the endpoint answers.
	rcv.setStatus(func(int) int { cancel(); return http.StatusNoContent })
	done := make(chan struct{})
	go func() { defer close(done); f.svc.Run(ctx) }()
	ev := f.event(events.TypePoolOpened, "pools/pool-1")
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30 s of its context's end")
	}
	ds := f.deliveries(ep.EndpointId)
	if len(ds) != 1 || ds[0].GetEventId() != ev.GetEventId() || ds[0].GetState() != crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED ||
		len(ds[0].GetAttempts()) != 1 || ds[0].GetAttempts()[0].GetHttpStatus() != http.StatusNoContent {
		t.Fatalf("after Run returned, the deliveries are %v; want the one attempted, recorded as delivered with its 204", ds)
	}
}

// TestATenantHasAtMostMaxEndpoints: each event is one delivery per
// endpoint, so a tenant's endpoints are bounded, also against concurrent
// creates; other tenants are not counted, and a deleted endpoint frees its
// place.
func TestATenantHasAtMostMaxEndpoints(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.MaxEndpoints = 3 })
	create := func(ctx context.Context) error {
		_, err := f.svc.CreateWebhookEndpoint(ctx, &crowdgatev1.CreateWebhookEndpointRequest{Url: "https://hooks.example/hook"})
		return err
	}
	var made, refused atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			switch err := create(f.ctx); statusCode(err) {
			case codes.OK:
				made.Add(1)
			case codes.FailedPrecondition:
				refused.Add(1)
			default:
				t.Errorf("CreateWebhookEndpoint: %v", err)
			}
		})
	}
	wg.Wait()
	if made.Load() != 3 || refused.Load() != 7 {
		t.Fatalf("10 concurrent creates with room for 3: %d made, %d refused; want 3 and 7", made.Load(), refused.Load())
	}
	if err := create(tenant.WithID(context.Background(), "t2")); err != nil {
		t.Errorf("another tenant's create: %v", err)
	}
	list, err := f.svc.ListWebhookEndpoints(f.ctx, &crowdgatev1.ListWebhookEndpointsRequest{})
	if err != nil || len(list.Endpoints) != 3 {
		t.Fatalf("ListWebhookEndpoints: %v, %v; want 3", list, err)
	}
	if _, err := f.svc.DeleteWebhookEndpoint(f.ctx, &crowdgatev1.DeleteWebhookEndpointRequest{EndpointId: list.Endpoints[0].EndpointId}); err != nil {
		t.Fatal(err)
	}
	if err := create(f.ctx); err != nil {
		t.Errorf("a create after a delete: %v", err)
	}
	if err := create(f.ctx); statusCode(err) != codes.FailedPrecondition {
		t.Errorf("a fourth endpoint: %v, want FAILED_PRECONDITION", err)
	}
}

// TestAPlaceACreateLeftIsFreedAfterItsTime: a create that took its place
// and stopped before storing its record (its replica died) holds the
// place for reservationTTL, while it may still be under way; then the
// place is free again.
func TestAPlaceACreateLeftIsFreedAfterItsTime(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.MaxEndpoints = 1 })
	if err := f.redis.Client.ZAdd(context.Background(), f.svc.st.endpointIndex("t1"), redis.Z{Member: newEndpointID(f.clock.Now())}).Err(); err != nil {
		t.Fatal(err)
	}
	req := &crowdgatev1.CreateWebhookEndpointRequest{Url: "https://hooks.example/hook"}
	if _, err := f.svc.CreateWebhookEndpoint(f.ctx, req); statusCode(err) != codes.FailedPrecondition {
		t.Fatalf("a create while another may be under way: %v, want FAILED_PRECONDITION", err)
	}
	f.clock.Advance(reservationTTL + time.Minute)
	if _, err := f.svc.CreateWebhookEndpoint(f.ctx, req); err != nil {
		t.Fatalf("a create once the stopped one's place is free: %v", err)
	}
	list, err := f.svc.ListWebhookEndpoints(f.ctx, &crowdgatev1.ListWebhookEndpointsRequest{})
	if err != nil || len(list.Endpoints) != 1 {
		t.Errorf("ListWebhookEndpoints: %v, %v; want the one endpoint", list, err)
	}
}

// TestARedeliveryOfADeliveryWaitingForARetryIsAttemptedNow: an operator
// who fixed their endpoint redelivers an event whose delivery waits hours
// for its next retry; it is attempted at once, as a new run of attempts,
// its earlier attempts are kept while it is queued (they used to expire
// with the retention of the run before), and it keeps its create_time.
func TestARedeliveryOfADeliveryWaitingForARetryIsAttemptedNow(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.RetrySchedule = []time.Duration{time.Hour, time.Hour} })
	rcv := newReceiver(t)
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	f.run(f.svc)
	ev := f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the first delivery", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	first := f.deliveries(ep.EndpointId)[0].GetCreateTime().AsTime()

	// Redelivered to an endpoint that now fails: the new run's retry waits
	// an hour.
	rcv.setStatus(func(int) int { return http.StatusServiceUnavailable })
	f.clock.Advance(time.Minute)
	redeliver := func() *crowdgatev1.WebhookDelivery {
		t.Helper()
		resp, err := f.svc.RedeliverWebhookEvent(f.ctx, &crowdgatev1.RedeliverWebhookEventRequest{EndpointId: ep.EndpointId, EventId: ev.EventId})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetDelivery()
	}
	redeliver()
	f.waitFor("the failed attempt of the redelivery", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && len(ds[0].Attempts) == 2
	})
	it := item(ep.EndpointId, ev.EventId)
	for what, key := range map[string]string{
		"record":  f.svc.rec.Record(shardOf(it), "t1", it),
		"journal": f.svc.rec.Journal(shardOf(it), "t1", it),
	} {
		if ttl := f.redis.Client.PTTL(f.ctx, key).Val(); ttl != -1 {
			t.Errorf("the queued delivery's %s expires in %v: its attempts would go before it settles", what, ttl)
		}
	}

	// The endpoint fixed, the operator redelivers again: attempted now,
	// not in an hour.
	rcv.setStatus(nil)
	before := rcv.count()
	d := redeliver()
	if d.GetState() != crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING {
		t.Errorf("redelivery answered %v", d)
	}
	f.waitFor("the redelivery attempted at once", func() bool { return rcv.count() > before })
	f.waitFor("the redelivery settled", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	got := f.deliveries(ep.EndpointId)[0]
	if len(got.Attempts) != 3 {
		t.Errorf("%d attempts listed, want 3 (delivered, failed, delivered)", len(got.Attempts))
	}
	if !got.GetCreateTime().AsTime().Equal(first) {
		t.Errorf("create_time %v after redeliveries, want when it was first queued, %v", got.GetCreateTime().AsTime(), first)
	}
}

// TestAReplicaThatCannotOpenTheSecretDoesNotBlameTheEndpoint: a replica
// whose key ring does not open an endpoint's secret (a misconfigured
// CROWDGATE_ENCRYPTION_KEY) used to record failed attempts, kill the
// delivery and count them towards disabling the endpoint. It makes no
// attempt and leaves the delivery for a replica that can sign it.
func TestAReplicaThatCannotOpenTheSecretDoesNotBlameTheEndpoint(t *testing.T) {
	quick := func(c *Config) {
		c.Settings.AttemptTimeout = 200 * time.Millisecond // a deferral waits three of them
		c.Settings.RetrySchedule = []time.Duration{time.Millisecond}
	}
	f := newFixture(t, quick)
	rcv := newReceiver(t)
	ep, secret := f.create(f.ctx, rcv.srv.URL)
	rcv.setSecret(secret)
	otherKey, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	wrong := f.newService(func(c *Config) { quick(c); c.Box = otherKey })
	f.run(wrong)
	ev := f.event(events.TypePoolOpened, "pools/p-1")
	f.waitFor("the replica to find it cannot sign (or to record attempts)", func() bool {
		if strings.Count(f.logs.String(), "does not open with this replica's key ring") >= 3 { // the entry offered again and again
			return true
		}
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && len(ds[0].Attempts) > 0
	})
	ds := f.deliveries(ep.EndpointId)
	if len(ds) != 1 || ds[0].State != crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING || len(ds[0].Attempts) != 0 {
		t.Fatalf("deliveries after the replica could not sign: %v, want one PENDING without attempts", ds)
	}
	if n := rcv.count(); n != 0 {
		t.Errorf("the endpoint got %d requests", n)
	}
	if fs := f.redis.Client.HExists(f.ctx, f.svc.st.endpointKey("t1", ep.EndpointId), "fs").Val(); fs {
		t.Error("the endpoint is marked failing")
	}
	// A replica whose ring opens the secret delivers it.
	f.run(f.svc)
	f.waitFor("the delivery by a replica that can sign", func() bool {
		ds := f.deliveries(ep.EndpointId)
		return len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED
	})
	if got := rcv.receipts(); len(got) == 0 || got[0].id != ev.EventId || got[0].verified != nil {
		t.Errorf("receipts %v", got)
	}
}

// TestAFailureAfterItsEndpointWasDeletedWritesNothing: an endpoint
// deleted while an attempt of it runs; the attempt fails. Marking the
// endpoint failing used to write its key back, holding only that mark,
// for ever.
func TestAFailureAfterItsEndpointWasDeletedWritesNothing(t *testing.T) {
	f := newFixture(t, nil)
	answered := make(chan struct{})
	deleted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(answered)
		<-deleted
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	ep, _ := f.create(f.ctx, srv.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.svc.Run(ctx) }()
	f.event(events.TypePoolOpened, "pools/p-1")
	<-answered
	if _, err := f.svc.DeleteWebhookEndpoint(f.ctx, &crowdgatev1.DeleteWebhookEndpointRequest{EndpointId: ep.EndpointId}); err != nil {
		t.Fatal(err)
	}
	close(deleted)
	f.waitFor("the failed attempt", func() bool { return strings.Contains(f.logs.String(), "webhook: attempt failed") })
	cancel()
	<-done // Run returns once the attempt is recorded, and acted on
	if n := f.redis.Client.Exists(f.ctx, f.svc.st.endpointKey("t1", ep.EndpointId)).Val(); n != 0 {
		fields := f.redis.Client.HGetAll(f.ctx, f.svc.st.endpointKey("t1", ep.EndpointId)).Val()
		t.Errorf("the deleted endpoint's key is back, holding %v", fields)
	}
}

package webhook

import (
	"net/http"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
)

// TestARedeliveryOfADeliveryInFlightIsNotLost: the operator redelivers an
// event (the endpoint is fixed) while the delivery's last attempt of its
// run is in a worker's hands. The redelivery answers PENDING, and starts
// a new run: the attempt in flight, failing, does not kill the delivery.
// (The outbox used to leave a queued record with a live entry alone: the
// attempt in flight ended the old run DEAD, and the operator's
// redelivery was lost.)
func TestARedeliveryOfADeliveryInFlightIsNotLost(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.RetrySchedule = []time.Duration{time.Millisecond} })
	rcv := newReceiver(t)
	inFlight := make(chan struct{})
	release := make(chan struct{})
	rcv.setStatus(func(n int) int {
		switch n {
		case 1:
			return http.StatusServiceUnavailable
		case 2: // the run's last attempt: held while the operator redelivers
			close(inFlight)
			<-release
			return http.StatusServiceUnavailable
		}
		return http.StatusOK // the endpoint is fixed
	})
	ep, _ := f.create(f.ctx, rcv.srv.URL)
	f.run(f.svc)
	ev := f.event(events.TypePoolOpened, "pools/p-1")
	<-inFlight

	resp, err := f.svc.RedeliverWebhookEvent(f.ctx, &crowdgatev1.RedeliverWebhookEventRequest{EndpointId: ep.EndpointId, EventId: ev.EventId})
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.GetDelivery().GetState(); st != crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_PENDING {
		t.Fatalf("redelivery answered %v", st)
	}
	close(release)

	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ds := f.deliveries(ep.EndpointId)
		if len(ds) == 1 && ds[0].State == crowdgatev1.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_DELIVERED {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	ds := f.deliveries(ep.EndpointId)
	t.Fatalf("5 s after a redelivery answered PENDING the delivery is %v with %d attempts (endpoint got %d requests); want a new run, DELIVERED",
		ds[0].GetState(), len(ds[0].GetAttempts()), rcv.count())
}

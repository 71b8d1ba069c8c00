package webhook

import (
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
)

// TestResealStopsFailingOnceTheUnreadableSecretIsRotatedOut: Reseal logs
// "a webhook endpoint's secret opens with no key ...; left as it is (rotate
// it with RotateWebhookSecret)" and crowdgate -reseal exits 1 while any
// secret is unreadable. An operator who does as told (rotates the secret,
// and even waits out the 24 hours the rotated-out secret would sign) expects
// the next reseal to pass: the rotated-out secret can never sign again.
func TestResealStopsFailingOnceTheUnreadableSecretIsRotatedOut(t *testing.T) {
	f := newFixture(t, nil)
	ep, _ := f.create(f.ctx, "https://hooks.example.com/h")
	// The key that sealed the secret is lost.
	lost, err := secretbox.New(secretbox.NewRandomKey())
	if err != nil {
		t.Fatal(err)
	}
	f.box = lost
	svc := f.newService(nil)
	if c, _ := svc.Reseal(f.ctx); c.Unreadable != 1 {
		t.Fatalf("first reseal %+v, want one unreadable", c)
	}
	if _, err := svc.RotateWebhookSecret(f.ctx, &crowdgatev1.RotateWebhookSecretRequest{EndpointId: ep.EndpointId}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(RotationOverlap + time.Hour)
	c, err := svc.Reseal(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Unreadable != 0 {
		t.Errorf("after RotateWebhookSecret and %v, reseal still counts %d unreadable webhook secret(s) (so crowdgate -reseal still exits 1; only a second rotation clears it): %+v; want 0, the rotated-out secret no longer signs", RotationOverlap+time.Hour, c.Unreadable, c)
	}
}

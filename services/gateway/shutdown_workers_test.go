package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestShutdownDoesNotWaitOutAHangingWebhookAttempt: a webhook endpoint
// that never answers holds an attempt for CROWDGATE_WEBHOOK_ATTEMPT_TIMEOUT;
// the shutdown used to wait for it (and for every read-ahead entry after
// it) with no bound, past drain + timeout + 5 s, where Kubernetes' SIGKILL
// comes (found by the operations review). The workers now get the same
// 5 s as the handlers; the attempt left unrecorded is delivered again
// later, with the same webhook-id.
func TestShutdownDoesNotWaitOutAHangingWebhookAttempt(t *testing.T) {
	const attemptTimeout = 60 * time.Second
	arrived := make(chan struct{}, 64)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // whatever the sender does: only the attempt's timeout ends it
	}))
	defer hang.Close()
	defer close(release)
	a := startAccessGateway(t, func(c *Config) {
		c.Webhooks.AllowPrivate = true
		c.Webhooks.AttemptTimeout = attemptTimeout
		c.ShutdownDrain = 0
		c.ShutdownTimeout = time.Second
	})
	tid := a.newTenant(t, "A")
	_, adminKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN)
	_, writeKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	if code, body := a.rest(t, "POST", "/v1/webhook_endpoints", `{"url":"`+hang.URL+`/hook"}`, adminKey); code != http.StatusOK {
		t.Fatalf("create the endpoint: %d %s", code, body)
	}
	buildFlow(t, a, bearer(writeKey))
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery reached the endpoint")
	}
	// Not a speed target: the bound is the attempt's own timeout, which a
	// shutdown that waits for the attempt cannot beat.
	start := time.Now()
	if err := a.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took >= attemptTimeout {
		t.Errorf("the shutdown took %s: it waited for the hanging attempt's %s timeout instead of giving the workers their grace", took.Round(time.Second), attemptTimeout)
	}
}

package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestAReadKeyDoesNotReadAWebhookURLThroughEvents: an endpoint's URL may
// carry a capability secret, so only an ADMIN key reads endpoints
// (TestOnlyAnAdminKeyReadsWebhookEndpoints). A READ key must not read that
// URL another way: the webhook_endpoint.disabled event, which ListEvents
// gives any key of the tenant.
func TestAReadKeyDoesNotReadAWebhookURLThroughEvents(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) }))
	defer failing.Close()
	a := startAccessGateway(t, func(c *Config) {
		c.Webhooks.AllowPrivate = true
		c.Webhooks.RetrySchedule = []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond, 200 * time.Millisecond}
		c.Webhooks.DisableAfter = 100 * time.Millisecond
	})
	tid := a.newTenant(t, "A")
	_, adminKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN)
	_, writeKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_, readKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	const secret = "XyZ-capability-token-0123456789"
	code, body := a.rest(t, "POST", "/v1/webhook_endpoints", `{"url":"`+failing.URL+`/hooks/`+secret+`"}`, adminKey)
	if code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, body := a.rest(t, "GET", "/v1/webhook_endpoints", "", readKey); code != http.StatusForbidden {
		t.Fatalf("READ lists endpoints: %d %s", code, body)
	}
	buildFlow(t, a, bearer(writeKey)) // events, delivered to the failing endpoint
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		_, body := a.rest(t, "GET", "/v1/events?page_size=100", "", readKey)
		last = body
		if strings.Contains(body, "webhook_endpoint.disabled") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(last, "webhook_endpoint.disabled") {
		t.Fatalf("the endpoint was not disabled in 20 s: %s", last)
	}
	if strings.Contains(last, secret) {
		t.Errorf("a READ key reads the webhook endpoint's capability URL in ListEvents (webhook_endpoint.disabled event): got an event with the URL %s/hooks/%s, want no URL for a key that may not read endpoints", failing.URL, secret)
	}
}

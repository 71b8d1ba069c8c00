package gateway

import (
	"net/http"
	"strings"
	"testing"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestOnlyAnAdminKeyReadsWebhookEndpoints: an endpoint's URL may carry a
// secret of its own (a capability URL: Slack, Discord, Zapier and most
// no-code receivers authenticate with a token in the path or query), so
// reading endpoints needs the ADMIN key that writes them. The tenant's
// lowest key, READ, used to read such a URL back in full.
func TestOnlyAnAdminKeyReadsWebhookEndpoints(t *testing.T) {
	a := startAccessGateway(t, nil)
	tid := a.newTenant(t, "A")
	_, adminKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_ADMIN)
	_, writeKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_WRITE)
	_, readKey := a.newKey(t, tid, crowdgatev1.ApiKeyScope_API_KEY_SCOPE_READ)
	const secret = "XyZ-capability-token-0123456789"
	code, body := a.rest(t, "POST", "/v1/webhook_endpoints", `{"url":"https://1.1.1.1/hooks/`+secret+`?token=`+secret+`"}`, adminKey)
	if code != http.StatusOK {
		t.Fatalf("create: %d %s", code, body)
	}
	for name, key := range map[string]string{"READ": readKey, "WRITE": writeKey} {
		if code, body := a.rest(t, "GET", "/v1/webhook_endpoints", "", key); code != http.StatusForbidden || strings.Contains(body, secret) {
			t.Errorf("a %s key lists endpoints: %d %s, want 403 without the URL", name, code, body)
		}
	}
	if code, body := a.rest(t, "GET", "/v1/webhook_endpoints", "", adminKey); code != http.StatusOK || !strings.Contains(body, secret) {
		t.Errorf("the ADMIN key lists endpoints: %d %s, want 200 with the URL it gave", code, body)
	}
}

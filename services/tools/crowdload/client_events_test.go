package crowdload

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// The REST calls of --webhook and crowdload webhooks go to the routes of
// crowdgate_http.yaml, with proto field names.
func TestRESTEventAndWebhookRequests(t *testing.T) {
	var got []string
	bodies := map[string]map[string]any{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			req += "?" + r.URL.RawQuery
		}
		got = append(got, req)
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Errorf("%s: body %q is not JSON", req, b)
			}
			bodies[r.URL.Path] = m
		}
		switch r.URL.Path {
		case "/v1/events":
			_, _ = io.WriteString(w, `{"events":[{"event_id":"evt_1","type":"session.started","cursor":"1-0","session":{"session_id":"ses_1"}}],"next_page_token":"1-0"}`)
		case "/v1/webhook_endpoints":
			_, _ = io.WriteString(w, `{"endpoint":{"endpoint_id":"whe_1"},"secret":"whsec_c2VjcmV0"}`)
		default:
			_, _ = io.WriteString(w, `{}`)
		}
	}))
	defer srv.Close()
	c := &restClient{base: srv.URL, hc: srv.Client()}
	ctx := context.Background()
	ep, err := c.CreateWebhookEndpoint(ctx, &crowdgatev1.CreateWebhookEndpointRequest{Url: "http://127.0.0.1:1/webhook", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.GetSecret() != "whsec_c2VjcmV0" || ep.GetEndpoint().GetEndpointId() != "whe_1" {
		t.Errorf("CreateWebhookEndpoint answer decoded as %v", ep)
	}
	evs, err := c.ListEvents(ctx, &crowdgatev1.ListEventsRequest{Cursor: "0-1", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.GetEvents()) != 1 || evs.GetEvents()[0].GetSession().GetSessionId() != "ses_1" || evs.GetNextPageToken() != "1-0" {
		t.Errorf("ListEvents answer decoded as %v", evs)
	}
	if _, err := c.EndSession(ctx, &crowdgatev1.EndSessionRequest{SessionId: "ses_1", Reason: crowdgatev1.EndReason_END_REASON_ENDED}); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	if _, err := c.RedeliverWebhookEvents(ctx, &crowdgatev1.RedeliverWebhookEventsRequest{EndpointId: "whe_1", StartTime: timestamppb.New(at)}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"POST /v1/webhook_endpoints",
		"GET /v1/events?cursor=0-1&page_size=1000",
		"POST /v1/sessions/ses_1/end",
		"POST /v1/webhook_endpoints/whe_1:redeliver",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	wantBodies := map[string]map[string]any{
		"/v1/webhook_endpoints":                 {"url": "http://127.0.0.1:1/webhook", "description": "d"},
		"/v1/sessions/ses_1/end":                {"reason": "END_REASON_ENDED"},
		"/v1/webhook_endpoints/whe_1:redeliver": {"start_time": "2026-12-06T12:00:00Z"},
	}
	if diff := cmp.Diff(wantBodies, bodies); diff != "" {
		t.Errorf("bodies (-want +got):\n%s", diff)
	}
}

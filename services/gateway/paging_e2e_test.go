package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// Every list answers a page token that is not one of its own with 400
// naming page_token (a made-up token used to give page 1 on some lists),
// and pages through with the tokens it gives.
func TestEveryListValidatesItsPageToken(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	ctx := env.Ctx()
	key := env.NewAPIKey("acme")
	p := env.OpenPool(ctx, key)
	env.MustPool(ctx, gatewaytest.ValidPool(p.GetProjectId(), env.Now()))
	for _, path := range []string{
		"/v1/credentials",
		"/v1/projects",
		"/v1/projects/" + p.GetProjectId() + "/pools",
		"/v1/pools/" + p.GetPoolId() + "/submissions",
		"/v1/tenants",
		"/v1/tenants/default/api-keys",
		"/v1/audit-events",
	} {
		t.Run(path, func(t *testing.T) {
			for _, bad := range []string{"zzz", "c3ViXzAw", strings.Repeat("A", 40)} {
				code, body := env.REST(http.MethodGet, path+"?page_token="+url.QueryEscape(bad), "")
				b, _ := json.Marshal(body)
				if code != http.StatusBadRequest || !strings.Contains(string(b), `"field":"page_token"`) {
					t.Errorf("page_token %q: %d %s, want 400 naming page_token", bad, code, b)
				}
			}
			code, body := env.REST(http.MethodGet, path+"?page_size=501", "")
			if b, _ := json.Marshal(body); code != http.StatusBadRequest || !strings.Contains(string(b), `"field":"page_size"`) {
				t.Errorf("page_size 501: %d %s, want 400 naming page_size", code, b)
			}
		})
	}
	// A token pages through its own list, and only that one.
	code, body := env.REST(http.MethodGet, "/v1/projects/"+p.GetProjectId()+"/pools?page_size=1", "")
	next, _ := body["next_page_token"].(string)
	if code != http.StatusOK || next == "" {
		t.Fatalf("first page of pools: %d %v", code, body)
	}
	if code, body := env.REST(http.MethodGet, "/v1/projects/"+p.GetProjectId()+"/pools?page_size=1&page_token="+url.QueryEscape(next), ""); code != http.StatusOK || len(body["pools"].([]any)) != 1 {
		t.Errorf("second page of pools: %d %v", code, body)
	}
	if code, _ := env.REST(http.MethodGet, "/v1/projects?page_token="+url.QueryEscape(next), ""); code != http.StatusBadRequest {
		t.Errorf("a pools token on the projects list: %d, want 400", code)
	}
}

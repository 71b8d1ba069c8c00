package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

const dashboard = "https://dash.example.com"

// send makes a request to the gateway and returns the answer, body read.
func send(t *testing.T, env *gatewaytest.Env, method, path string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, env.HTTP+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// preflight is the OPTIONS request a browser sends before a dashboard's
// call with a key, a JSON body and the tenant header.
func preflight(t *testing.T, env *gatewaytest.Env, path, origin, method string) *http.Response {
	t.Helper()
	resp, _ := send(t, env, http.MethodOptions, path,
		"Origin", origin,
		"Access-Control-Request-Method", method,
		"Access-Control-Request-Headers", "authorization,content-type,x-crowdgate-tenant")
	return resp
}

// listHas reports whether a comma-separated header value lists v (any case).
func listHas(h http.Header, name, v string) bool {
	for _, part := range strings.Split(strings.Join(h.Values(name), ","), ",") {
		if strings.EqualFold(strings.TrimSpace(part), v) {
			return true
		}
	}
	return false
}

// A dashboard on an allowed origin may call the REST API, read the OpenAPI
// document and the JWKS from a browser: preflights and answers carry the
// CORS headers, for that origin only, and never allow credentials. Other
// origins get none, and neither do the Toloker's landing and the
// operations endpoints.
func TestCORSForDashboards(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.CORS.Origins = []string{dashboard, "https://*.partner.example"}
	}})
	for _, tc := range []struct{ path, method string }{
		{"/v1/projects", http.MethodPost},
		{"/v1/pools/pool_1", http.MethodPatch},
		{"/v1/credentials/cred_1", http.MethodDelete},
		{"/openapi.json", http.MethodGet},
		{"/.well-known/jwks.json", http.MethodGet},
	} {
		t.Run("preflight "+tc.method+" "+tc.path, func(t *testing.T) {
			for _, origin := range []string{dashboard, "https://eu.partner.example"} {
				resp := preflight(t, env, tc.path, origin, tc.method)
				h := resp.Header
				if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != origin {
					t.Errorf("from %s: %d, Access-Control-Allow-Origin %q; want 204 and the origin", origin, resp.StatusCode, h.Get("Access-Control-Allow-Origin"))
				}
				for _, want := range []string{"Authorization", "Content-Type", "X-Crowdgate-Tenant"} {
					if !listHas(h, "Access-Control-Allow-Headers", want) {
						t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Values("Access-Control-Allow-Headers"), want)
					}
				}
				if !listHas(h, "Access-Control-Allow-Methods", tc.method) || h.Get("Access-Control-Max-Age") == "" || !listHas(h, "Vary", "Origin") {
					t.Errorf("preflight headers %v", h)
				}
				if v := h.Get("Access-Control-Allow-Credentials"); v != "" {
					t.Errorf("Access-Control-Allow-Credentials %q: credentials are never allowed", v)
				}
			}
			for _, origin := range []string{"https://evil.example", "https://dash.example.com.evil.example", "http://dash.example.com", "null"} {
				h := preflight(t, env, tc.path, origin, tc.method).Header
				for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"} {
					if v := h.Get(name); v != "" {
						t.Errorf("a preflight from %s got %s: %q", origin, name, v)
					}
				}
			}
		})
	}

	t.Run("answers", func(t *testing.T) {
		for _, path := range []string{"/v1/projects", "/openapi.json", "/.well-known/jwks.json"} {
			resp, body := send(t, env, http.MethodGet, path, "Origin", dashboard)
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != dashboard {
				t.Errorf("GET %s from the dashboard: %d, Access-Control-Allow-Origin %q: %.200s", path, resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), body)
			}
			if !listHas(resp.Header, "Access-Control-Expose-Headers", "Retry-After") {
				t.Errorf("GET %s: a dashboard cannot read Retry-After (Access-Control-Expose-Headers %q)", path, resp.Header.Get("Access-Control-Expose-Headers"))
			}
			if resp, _ := send(t, env, http.MethodGet, path, "Origin", "https://evil.example"); resp.Header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("GET %s from another origin: Access-Control-Allow-Origin %q", path, resp.Header.Get("Access-Control-Allow-Origin"))
			}
		}
		// An error answer too: the dashboard reads why.
		resp, _ := send(t, env, http.MethodGet, "/v1/projects/prj_nope", "Origin", dashboard)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Access-Control-Allow-Origin") != dashboard {
			t.Errorf("a 404 from the dashboard: %d, Access-Control-Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
		}
		for _, path := range []string{"/start?assignment_id=x", "/metrics", "/healthz", "/readyz"} {
			resp, _ := send(t, env, http.MethodGet, path, "Origin", dashboard)
			if v := resp.Header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("GET %s (not for dashboards) answers Access-Control-Allow-Origin %q", path, v)
			}
		}
	})
}

// With CROWDGATE_CORS_ORIGINS unset (the default) no origin gets
// cross-origin access: a preflight is refused (405, no CORS header).
func TestNoCrossOriginAccessByDefault(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	resp := preflight(t, env, "/v1/projects", dashboard, http.MethodPost)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight: %d, Access-Control-Allow-Origin %q; want 405 and none", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	if resp, _ := send(t, env, http.MethodGet, "/v1/projects", "Origin", dashboard); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET from another origin: Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

// "*" lets any page call with a key it holds; credentials (cookies) are
// still never allowed.
func TestCORSForAnyOrigin(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) { c.CORS.Origins = []string{"*"} }})
	resp := preflight(t, env, "/v1/projects", "https://anyone.example", http.MethodPost)
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("preflight headers %v, want Access-Control-Allow-Origin * without credentials", resp.Header)
	}
}

// A method a REST path does not take answers 405 with Allow naming the
// ones it does (grpc-gateway alone answers 501), and so do the other
// endpoints; an unknown path stays 404.
func TestWrongMethodAnswers405WithAllow(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, tc := range []struct {
		method, path, allow string
	}{
		{http.MethodDelete, "/v1/projects", "GET, HEAD, POST"},
		{http.MethodPut, "/v1/projects/prj_1", "GET, HEAD, PATCH"},
		{http.MethodGet, "/v1/pools", "POST"},
		{http.MethodPost, "/v1/pools/pool_1", "GET, HEAD, PATCH"},
		{http.MethodPost, "/v1/credentials/cred_1", "GET, HEAD, DELETE"},
		{http.MethodGet, "/v1/sessions:exchange", "POST"},
		{http.MethodOptions, "/v1/tenants", "GET, HEAD, POST"},
		{http.MethodPost, "/openapi.json", "GET, HEAD"},
		{http.MethodPost, "/.well-known/jwks.json", "GET, HEAD"},
		{http.MethodPost, "/start?assignment_id=x", "GET, HEAD"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp, body := send(t, env, tc.method, tc.path)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != tc.allow {
				t.Errorf("%d, Allow %q: want 405, Allow %q; body %s", resp.StatusCode, resp.Header.Get("Allow"), tc.allow, body)
			}
			if strings.HasPrefix(tc.path, "/v1/") {
				var st struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal([]byte(body), &st); err != nil || st.Code != 12 || !strings.Contains(st.Message, tc.allow) {
					t.Errorf("body %s, want a status naming the allowed methods", body)
				}
			}
		})
	}
	if resp, _ := send(t, env, http.MethodGet, "/v1/nothing-here"); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Allow") != "" {
		t.Errorf("an unknown path: %d, Allow %q; want 404", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// REST answers carry no gRPC metadata: no Grpc-Metadata-* header (the gRPC
// transport's content-type leaked as one), no Grpc-Trailer-* even when the
// client accepts trailers.
func TestRESTAnswersCarryNoGRPCMetadata(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/v1/projects"},
		{http.MethodGet, "/v1/projects/prj_nope"}, // an error
		{http.MethodPost, "/v1/sessions:exchange"},
	} {
		resp, _ := send(t, env, tc.method, tc.path, "TE", "trailers")
		for name := range resp.Header {
			if strings.HasPrefix(name, "Grpc-") {
				t.Errorf("%s %s answers %s: %q", tc.method, tc.path, name, resp.Header.Values(name))
			}
		}
		for name := range resp.Trailer {
			t.Errorf("%s %s answers the trailer %s", tc.method, tc.path, name)
		}
	}
}

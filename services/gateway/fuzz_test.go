package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

// The fuzz targets drive the gateway's own HTTP handler in-process (REST
// still reaches the handlers through the gRPC server over loopback, as in
// production), with authentication on and the bootstrap admin key, so
// every decoded request reaches its handler. Seeds are below and in
// testdata/fuzz/<target>/; `go test` runs them as ordinary tests. A short
// fuzzing run:
//
//	go test -run='^$' -fuzz='^FuzzREST$' -fuzztime=10s ./services/gateway
//	go test -run='^$' -fuzz='^FuzzLanding$' -fuzztime=10s ./services/gateway

// checkNoServerError fails on a 5xx answer or a panic logged by a
// handler's recovery (gRPC handlers' and the landing's).
func checkNoServerError(t *testing.T, a *accessGateway, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: %d %.300s", what, rec.Code, rec.Body.String())
	}
	if strings.Contains(a.logs.String(), "panic") {
		t.Fatalf("%s: a handler panicked:\n%s", what, a.logs.String())
	}
}

// FuzzREST posts arbitrary bodies (and path parameters) to every REST
// route that takes a body: a bad request is a 4xx, never a 5xx or a panic.
func FuzzREST(f *testing.F) {
	a := startAccessGateway(f, nil)
	var routes [][3]string
	for _, r := range restRoutes(f) {
		if r[0] != http.MethodGet {
			routes = append(routes, r)
		}
	}
	// Ids of real records, so fuzzed requests also reach existing ones.
	flow := buildFlow(f, a, bearer(testAdminKey))
	for i := range routes {
		f.Add(uint8(i), "x1", []byte(`{}`))
	}
	for _, seed := range []struct {
		path string
		body string
	}{
		{"/v1/credentials", `{"display_name": "k", "environment": "ENVIRONMENT_SANDBOX", "api_key": "` + testTolokaKey + `"}`},
		{"/v1/projects", `{"credential_id": "` + flow["credential_id"] + `", "public_name": "p", "public_description": "d", "platform_url": "https://p.example.com", "partner_name": "P", "partner_url": "https://p.example.com"}`},
		{"/v1/pools", `{"project_id": "` + flow["project_id"] + `", "private_name": "p", "reward_per_assignment": "0.05", "assignment_max_duration_seconds": 600, "will_expire": "2099-01-01T00:00:00Z", "defaults": {"default_overlap_for_new_task_suites": 1}}`},
		{"/v1/submissions", `{"session_id": "` + flow["session_id"] + `", "reward": "0.01", "quality": "0.5", "custom_log": "{\"a\": 1}"}`},
		{"/v1/submissions", `{"pool_id": "` + flow["pool_id"] + `", "user_id": "toloker-1", "reward": "1e400", "start_time": "2024-13-01T00:00:00Z"}`},
		{"/v1/sessions:exchange", `{"code": "` + flow["code"] + `"}`},
		{"/v1/sessions", `{"assignment_id": "` + flow["assignment_id"] + `"}`},
		{"/v1/tenants", `{"display_name": "\u0000\ud800"}`},
	} {
		for i, r := range routes {
			if r[1] == seed.path {
				f.Add(uint8(i), "x1", []byte(seed.body))
			}
		}
	}
	for i, r := range routes {
		if strings.Contains(r[1], "x1") {
			for _, id := range []string{flow["pool_id"], flow["session_id"], flow["submission_id"], flow["project_id"], flow["assignment_id"], "%2F..%2F", "{x}"} {
				f.Add(uint8(i), id, []byte(`{}`))
			}
		}
	}
	h := a.g.httpServer.Handler
	f.Fuzz(func(t *testing.T, route uint8, id string, body []byte) {
		r := routes[int(route)%len(routes)]
		path := strings.ReplaceAll(r[1], "x1", url.PathEscape(id))
		req, err := http.NewRequest(r[0], "http://crowdgate.test"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+testAdminKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkNoServerError(t, a, r[0]+" "+path, rec)
	})
}

// FuzzLanding sends arbitrary query strings to GET /start, the page a
// Toloker lands on: any answer but a 5xx or a panic.
func FuzzLanding(f *testing.F) {
	a := startAccessGateway(f, nil)
	flow := buildFlow(f, a, bearer(testAdminKey))
	for _, q := range []string{
		"", "assignment_id=", "assignment_id=" + flow["assignment_id"],
		"assignment_id=" + flow["assignment_id"] + "&assignment_id=x",
		"assignment_id=0000000001--000000000000000000000001",
		"assignment_id=00000000zz--000000000000000000000001",
		"assignment_id=%00%ff%fe", "assignment_id=%zz", "assignment_id=" + strings.Repeat("0", 4096),
		"assignment_id=" + url.QueryEscape("{crowdgate}--:*"), ";;&&==", "assignment_id=a;b",
		"task_id=1&pool_id=2&assignment_id=0000000001--000000000000000000000001&return_url=http://evil.example.com",
	} {
		f.Add(q)
	}
	h := a.g.httpServer.Handler
	var n atomic.Uint32
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, LandingPath, nil)
		req.URL.RawQuery = query
		// Spread the calls over client addresses so the per-IP limit
		// does not answer them all.
		i := n.Add(1)
		req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:4321", byte(i>>16), byte(i>>8), byte(i))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		checkNoServerError(t, a, "GET /start?"+query, rec)
		if loc := rec.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, "https://label.example.com/start") {
			t.Fatalf("GET /start?%s redirects to %q, not the project's platform", query, loc)
		}
	})
}

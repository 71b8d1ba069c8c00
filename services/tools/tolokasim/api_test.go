package tolokasim

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAuthentication(t *testing.T) {
	h := newHarness(t, nil)
	projectID := h.createProject(testKey)

	cases := []struct {
		name       string
		auth       string
		wantStatus int
		wantCode   string
	}{
		{"missing header", "", http.StatusUnauthorized, CodeAuthentication},
		{"unknown api key", "ApiKey nope", http.StatusUnauthorized, CodeAuthentication},
		{"unknown oauth token", "OAuth nope", http.StatusUnauthorized, CodeAuthentication},
		{"bearer scheme", "Bearer " + testKey, http.StatusUnauthorized, CodeAuthentication},
		{"scheme without credentials", "ApiKey", http.StatusUnauthorized, CodeAuthentication},
		{"bare key", testKey, http.StatusUnauthorized, CodeAuthentication},
		{"api key", "ApiKey " + testKey, http.StatusOK, ""},
		{"oauth token", "OAuth " + testKey, http.StatusOK, ""},
		{"another account sees nothing", "ApiKey " + otherKey, http.StatusNotFound, CodeDoesNotExist},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.auth != "" {
				hdr["Authorization"] = tc.auth
			}
			r := h.raw("GET", "/api/v1/projects/"+projectID, hdr, "")
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.wantStatus, r.body)
			}
			if tc.wantCode == "" {
				return
			}
			body := r.obj(t)
			if diff := cmp.Diff(tc.wantCode, body["code"]); diff != "" {
				t.Errorf("code (-want +got):\n%s", diff)
			}
			if id, _ := body["request_id"].(string); id == "" {
				t.Errorf("request_id missing in %s", r.body)
			}
			if p, ok := body["payload"]; !ok || p != nil {
				t.Errorf("payload = %v (present %v), want null", p, ok)
			}
		})
	}
}

func TestAuthorizationNeverRecorded(t *testing.T) {
	h := newHarness(t, nil)
	h.createProject(testKey)
	h.raw("GET", "/api/v1/projects", map[string]string{"Authorization": "OAuth secret-token-123"}, "")
	for _, rec := range h.srv.Requests("") {
		for _, s := range []string{testKey, "secret-token-123"} {
			if strings.Contains(string(rec.Body)+rec.Query+rec.Path+rec.Account, s) {
				t.Errorf("request record %+v contains a credential", rec)
			}
		}
	}
}

func TestContentType(t *testing.T) {
	h := newHarness(t, nil)
	body := string(mustJSON(validProject()))
	cases := []struct {
		name        string
		contentType string
		want        int
	}{
		{"missing", "", http.StatusUnsupportedMediaType},
		{"text/plain", "text/plain", http.StatusUnsupportedMediaType},
		{"form", "application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"json", "application/json", http.StatusCreated},
		{"json with charset", "application/json; charset=utf-8", http.StatusCreated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := map[string]string{"Authorization": "ApiKey " + testKey}
			if tc.contentType != "" {
				hdr["Content-Type"] = tc.contentType
			}
			r := h.raw("POST", "/api/v1/projects", hdr, body)
			if r.status != tc.want {
				t.Fatalf("status %d, want %d; body %s", r.status, tc.want, r.body)
			}
			if tc.want == http.StatusUnsupportedMediaType {
				if got := r.code(t); got != CodeUnsupportedMediaType {
					t.Errorf("code %q, want %q", got, CodeUnsupportedMediaType)
				}
			}
		})
	}
	t.Run("bodiless POST needs no content type", func(t *testing.T) {
		poolID := h.createPool(testKey, h.createProject(testKey), nil)
		h.expect(h.raw("POST", "/api/v1/pools/"+poolID+"/open", map[string]string{"Authorization": "ApiKey " + testKey}, ""), http.StatusAccepted)
	})
}

func TestBodyTooLarge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxBodyBytes = 64 })
	r := h.do("POST", "/api/v1/projects", testKey, validProject())
	h.expect(r, http.StatusRequestEntityTooLarge)
	if got := r.code(t); got != CodePayloadTooLarge {
		t.Errorf("code %q, want %q", got, CodePayloadTooLarge)
	}
}

func TestBadBodies(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		name string
		body string
	}{
		{"empty", ""},
		{"not json", "{nope"},
		{"array", "[]"},
		{"trailing data", `{"a":1} {"b":2}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := h.raw("POST", "/api/v1/projects", map[string]string{
				"Authorization": "ApiKey " + testKey, "Content-Type": "application/json"}, tc.body)
			h.expect(r, http.StatusBadRequest)
			if got := r.code(t); got != CodeValidation {
				t.Errorf("code %q, want %q", got, CodeValidation)
			}
		})
	}
}

func TestUnknownMethod(t *testing.T) {
	h := newHarness(t, nil)
	r := h.do("GET", "/api/v1/no-such-thing", testKey, nil)
	h.expect(r, http.StatusNotFound)
	if got := r.code(t); got != CodeDoesNotExist {
		t.Errorf("code %q, want %q", got, CodeDoesNotExist)
	}
}

func TestRequestLog(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RequestLogSize = 3 })
	projectID := h.createProject(testKey)
	h.createPool(testKey, projectID, func(p map[string]any) { p["x_custom"] = map[string]any{"k": []any{1, 2}} })
	h.do("GET", "/api/v1/pools", testKey, nil)
	h.do("GET", "/api/v1/projects/"+projectID, testKey, nil)

	all := h.srv.Requests("")
	var got []string
	for _, r := range all {
		got = append(got, r.Method+" "+r.Path)
	}
	want := []string{"POST /api/v1/pools", "GET /api/v1/pools", "GET /api/v1/projects/" + projectID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ring buffer keeps the newest 3, oldest first (-want +got):\n%s", diff)
	}
	pools := h.srv.Requests("/api/v1/pools")
	if len(pools) != 2 {
		t.Fatalf("got %d records under /api/v1/pools, want 2", len(pools))
	}
	create := pools[0]
	if create.Status != http.StatusCreated || create.Account != testAcct {
		t.Errorf("record = %+v, want status 201 account %s", create, testAcct)
	}
	if !strings.Contains(string(create.Body), `"x_custom":{"k":[1,2]}`) || !strings.Contains(string(create.Body), `"reward_per_assignment":0.05`) {
		t.Errorf("record body %s does not hold what the client sent", create.Body)
	}

	// The admin endpoint serves the same records.
	r := h.expect(h.do("GET", "/_admin/requests?path_prefix=/api/v1/pools", "", nil), http.StatusOK)
	if n := r.obj(t)["count"]; n != float64(2) {
		t.Errorf("admin count = %v, want 2", n)
	}
}

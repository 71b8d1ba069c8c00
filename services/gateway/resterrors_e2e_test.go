package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// fieldOf returns the field a REST error's BadRequest detail names.
func fieldOf(t *testing.T, body map[string]any) string {
	t.Helper()
	details, _ := body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if m["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		for _, v := range m["field_violations"].([]any) {
			f, _ := v.(map[string]any)["field"].(string)
			return f
		}
	}
	return ""
}

// A body REST cannot decode is a 400 whose BadRequest names the field by
// its proto path in snake_case, as every other INVALID_ARGUMENT does; the
// message never uses protojson's camelCase names.
func TestRESTDecodeErrorsNameTheFieldInSnakeCase(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, tc := range []struct {
		name, method, path, body, field string
	}{
		{"wrong type", "POST", "/v1/pools", `{"assignment_max_duration_seconds": "abc"}`, "assignment_max_duration_seconds"},
		{"camelCase input, wrong type", "POST", "/v1/pools", `{"assignmentMaxDurationSeconds": true}`, "assignment_max_duration_seconds"},
		{"nested", "POST", "/v1/pools", `{"defaults": {"default_overlap_for_new_task_suites": -1.5}}`, "defaults.default_overlap_for_new_task_suites"},
		{"in a list", "POST", "/v1/pools", `{"dynamic_pricing_config": {"type": "SKILL", "intervals": [{"from": 0}, {"from": "x"}]}}`, "dynamic_pricing_config.intervals[1].from"},
		{"bad timestamp", "POST", "/v1/pools", `{"will_expire": "yesterday"}`, "will_expire"},
		{"unknown field", "POST", "/v1/credentials", `{"display_nam": "x"}`, "display_nam"},
		{"broken JSON", "POST", "/v1/credentials", `{"display_name": `, "body"},
		{"query parameter", "GET", "/v1/projects?page_size=abc", "", "page_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := env.REST(tc.method, tc.path, tc.body)
			b, _ := json.Marshal(body)
			if code != http.StatusBadRequest || fieldOf(t, body) != tc.field {
				t.Errorf("%d %s, want 400 naming %s", code, b, tc.field)
			}
			if msg, _ := body["message"].(string); strings.Contains(msg, "Seconds") || strings.Contains(msg, "proto:") {
				t.Errorf("message %q shows protojson's internals", msg)
			}
		})
	}
}

// When Redis fails, clients get a generic 503 with a retry hint; the cause
// (an internal address) goes to the log only.
func TestStoreFailureTellsClientsNothingInternal(t *testing.T) {
	mini := miniredis.RunT(t)
	r := &redistest.Redis{Client: redis.NewClient(&redis.Options{Addr: mini.Addr()}), Prefix: "t:", URL: "redis://" + mini.Addr(), Mini: mini}
	env := gatewaytest.Start(t, gatewaytest.Options{Redis: r})
	addr := mini.Addr()
	mini.Close()
	code, raw := env.RESTRaw(http.MethodGet, "/v1/credentials/cred_1", "")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("GET with Redis down = %d %s, want 503", code, raw)
	}
	for _, leak := range []string{"dial", "127.0.0.1", addr, "redis:"} {
		if strings.Contains(string(raw), leak) {
			t.Errorf("the answer shows %q: %s", leak, raw)
		}
	}
	if !strings.Contains(string(raw), "RetryInfo") {
		t.Errorf("no retry hint in %s", raw)
	}
	req, _ := http.NewRequest(http.MethodGet, env.HTTP+"/v1/credentials/cred_1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on the 503")
	}
	if !strings.Contains(env.Logs.String(), "connection refused") && !strings.Contains(env.Logs.String(), "dial tcp") {
		t.Errorf("the cause is not in the log:\n%s", env.Logs.String())
	}
}

// A dashboard pastes a Latin-1 cursor or user id into a query. The value
// that is not UTF-8 is refused with 400 INVALID_ARGUMENT whose BadRequest
// names its parameter, as every other INVALID_ARGUMENT does.
func TestAQueryValueThatIsNotUTF8IsRefusedNamingItsParameter(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	p := env.OpenPool(env.Ctx(), env.NewAPIKey("acme"))
	for path, field := range map[string]string{
		"/v1/pools/" + p.GetPoolId() + "/tolokers:export?cursor=%ff":             "cursor",
		"/v1/tolokers?page_size=2&page_token=%ff":                                "page_token",
		"/v1/pools/" + p.GetPoolId() + "/submissions?user_id=caf%e9&page_size=1": "user_id",
	} {
		code, body := env.REST(http.MethodGet, path, "")
		if code != http.StatusBadRequest || body["code"] != json.Number("3") || fieldOf(t, body) != field {
			t.Errorf("GET %s: %d %v; want 400 INVALID_ARGUMENT naming %s", path, code, body, field)
		}
	}
}

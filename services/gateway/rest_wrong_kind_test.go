package gateway_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// TestRESTValuesOfTheWrongKindNameTheField: a body that is valid JSON but
// gives a field a JSON array or object where the proto wants a scalar (or
// a scalar or array where it wants a message) is a 400 naming that field,
// like every other decode error. protojson reports some of these as
// "syntax error ... unexpected token", which used to name "body" and say
// "is not valid JSON".
func TestRESTValuesOfTheWrongKindNameTheField(t *testing.T) {
	env := gatewaytest.Start(t, gatewaytest.Options{})
	for _, tc := range []struct {
		name, method, path, body, field string
	}{
		{"array for a string", "POST", "/v1/credentials", `{"display_name": ["x"]}`, "display_name"},
		{"object for a string", "POST", "/v1/credentials", `{"display_name": {"a": 1}}`, "display_name"},
		{"array for a message", "POST", "/v1/pools", `{"defaults": []}`, "defaults"},
		{"array for a nested number", "POST", "/v1/pools", `{"defaults": {"default_overlap_for_new_task_suites": [1]}}`, "defaults.default_overlap_for_new_task_suites"},
		{"number for a message", "POST", "/v1/pools", `{"defaults": 5}`, "defaults"},
		{"string for a message", "POST", "/v1/pools", `{"defaults": "x"}`, "defaults"},
		{"object for a list", "POST", "/v1/pools", `{"dynamic_pricing_config": {"intervals": {}}}`, "dynamic_pricing_config.intervals"},
		{"number for a list", "POST", "/v1/pools", `{"dynamic_pricing_config": {"intervals": 3}}`, "dynamic_pricing_config.intervals"},
		{"object in a list of messages", "POST", "/v1/pools", `{"dynamic_pricing_config": {"type": "SKILL", "intervals": [{"from": 0}, {"from": {}}]}}`, "dynamic_pricing_config.intervals[1].from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := env.REST(tc.method, tc.path, tc.body)
			b, _ := json.Marshal(body)
			if code != http.StatusBadRequest || fieldOf(t, body) != tc.field {
				t.Errorf("%d %s, want 400 naming %s", code, b, tc.field)
			}
		})
	}
}

package pool_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"

	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// seed004Configs are quality_control.configs in the REST API's JSON: every
// collector of seed 004 and Toloka's reference with every one of its
// condition keys, every operator, every value type (counts, rates such as
// 75.5, amounts, assessment_event, pool_access_revoked_reason, skill_id and
// booleans) and every action with every ban unit. Seed 004's own example
// comes first.
const seed004Configs = `[
	{"collector_config": {"type": "COLLECTOR_TYPE_GOLDEN_SET", "parameters": {"history_size": 10}},
	 "rules": [
		{"conditions": [{"key": "golden_set_answers_count", "operator": "COMPARISON_OPERATOR_GT", "value": 7}],
		 "action": {"type": "RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "42", "from_field": "golden_set_correct_answers_rate"}}},
		{"conditions": [{"key": "golden_set_answers_count", "operator": "COMPARISON_OPERATOR_GT", "value": 7},
		                {"key": "golden_set_correct_answers_rate", "operator": "COMPARISON_OPERATOR_LT", "value": 75}],
		 "action": {"type": "RULE_ACTION_TYPE_RESTRICTION_V2", "parameters": {"scope": "RESTRICTION_SCOPE_PROJECT", "duration_unit": "DURATION_UNIT_DAYS", "duration": 10, "private_comment": "Control tasks were not completed"}}},
		{"conditions": [{"key": "golden_set_incorrect_answers_rate", "operator": "COMPARISON_OPERATOR_GTE", "value": 40.5}],
		 "action": {"type": "RULE_ACTION_TYPE_RESTRICTION_V2", "parameters": {"scope": "RESTRICTION_SCOPE_POOL", "duration_unit": "DURATION_UNIT_HOURS", "duration": 12, "private_comment": "Control tasks were not completed"}}},
		{"conditions": [{"key": "total_answers_count", "operator": "COMPARISON_OPERATOR_GTE", "value": 20},
		                {"key": "correct_answers_rate", "operator": "COMPARISON_OPERATOR_LTE", "value": 30.25}],
		 "action": {"type": "RULE_ACTION_TYPE_RESTRICTION_V2", "parameters": {"scope": "RESTRICTION_SCOPE_ALL_PROJECTS", "duration_unit": "DURATION_UNIT_MINUTES", "duration": 30}}},
		{"conditions": [{"key": "incorrect_answers_rate", "operator": "COMPARISON_OPERATOR_EQ", "value": 100}],
		 "action": {"type": "RULE_ACTION_TYPE_RESTRICTION_V2", "parameters": {"scope": "RESTRICTION_SCOPE_PROJECT", "duration_unit": "DURATION_UNIT_PERMANENT", "private_comment": "All wrong"}}},
		{"conditions": [{"key": "golden_set_answers_count", "operator": "COMPARISON_OPERATOR_NE", "value": 0}],
		 "action": {"type": "RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "43", "from_field": "wrong_answers_rate"}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_MAJORITY_VOTE", "parameters": {"answer_threshold": 3, "history_size": 50}},
	 "rules": [
		{"conditions": [{"key": "total_answers_count", "operator": "COMPARISON_OPERATOR_GT", "value": 9},
		                {"key": "correct_answers_rate", "operator": "COMPARISON_OPERATOR_LT", "value": 62.5}],
		 "action": {"type": "RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "44", "from_field": "correct_answers_rate"}}},
		{"conditions": [{"key": "incorrect_answers_rate", "operator": "COMPARISON_OPERATOR_GT", "value": 50}],
		 "action": {"type": "RULE_ACTION_TYPE_REJECT_ALL_ASSIGNMENTS", "parameters": {"public_comment": "Answers disagree with the majority"}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_INCOME"},
	 "rules": [{"conditions": [{"key": "income_sum_for_last_24_hours", "operator": "COMPARISON_OPERATOR_GTE", "value": 20.5}],
	            "action": {"type": "RULE_ACTION_TYPE_RESTRICTION_V2", "parameters": {"scope": "RESTRICTION_SCOPE_POOL", "duration_unit": "DURATION_UNIT_HOURS", "duration": 24}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_SKIPPED_IN_ROW_ASSIGNMENTS"},
	 "rules": [{"conditions": [{"key": "skipped_in_row_count", "operator": "COMPARISON_OPERATOR_GTE", "value": 10}],
	            "action": {"type": "RULE_ACTION_TYPE_RESTRICTION", "parameters": {"scope": "RESTRICTION_SCOPE_PROJECT", "private_comment": "Skips"}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_ANSWER_COUNT"},
	 "rules": [{"conditions": [{"key": "assignments_accepted_count", "operator": "COMPARISON_OPERATOR_GTE", "value": 5}],
	            "action": {"type": "RULE_ACTION_TYPE_SET_SKILL", "parameters": {"skill_id": "45", "skill_value": 100}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME", "parameters": {"history_size": 5, "fast_submit_threshold_seconds": 20}},
	 "rules": [{"conditions": [{"key": "total_submitted_count", "operator": "COMPARISON_OPERATOR_GTE", "value": 5},
	                           {"key": "fast_submitted_count", "operator": "COMPARISON_OPERATOR_GT", "value": 2}],
	            "action": {"type": "RULE_ACTION_TYPE_REJECT_ALL_ASSIGNMENTS", "parameters": {"public_comment": "Too fast"}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_ACCEPTANCE_RATE", "parameters": {"history_size": 30}},
	 "rules": [
		{"conditions": [{"key": "total_assignments_count", "operator": "COMPARISON_OPERATOR_GT", "value": 2},
		                {"key": "rejected_assignments_rate", "operator": "COMPARISON_OPERATOR_GT", "value": 35.5}],
		 "action": {"type": "RULE_ACTION_TYPE_RESTRICTION_V2", "parameters": {"scope": "RESTRICTION_SCOPE_ALL_PROJECTS", "duration_unit": "DURATION_UNIT_DAYS", "duration": 15}}},
		{"conditions": [{"key": "accepted_assignments_rate", "operator": "COMPARISON_OPERATOR_GTE", "value": 99.9}],
		 "action": {"type": "RULE_ACTION_TYPE_APPROVE_ALL_ASSIGNMENTS"}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_ASSIGNMENTS_ASSESSMENT"},
	 "rules": [
		{"conditions": [{"key": "assessment_event", "operator": "COMPARISON_OPERATOR_EQ", "value": "REJECT"}],
		 "action": {"type": "RULE_ACTION_TYPE_CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": true}}},
		{"conditions": [{"key": "assessment_event", "operator": "COMPARISON_OPERATOR_NE", "value": "ACCEPT"},
		                {"key": "pending_assignments_count", "operator": "COMPARISON_OPERATOR_LT", "value": 3}],
		 "action": {"type": "RULE_ACTION_TYPE_CHANGE_OVERLAP", "parameters": {"delta": 2, "open_pool": false}}},
		{"conditions": [{"key": "assessment_event", "operator": "COMPARISON_OPERATOR_EQ", "value": "ACCEPT_AFTER_REJECT"},
		                {"key": "accepted_assignments_count", "operator": "COMPARISON_OPERATOR_GTE", "value": 1},
		                {"key": "rejected_assignments_count", "operator": "COMPARISON_OPERATOR_LTE", "value": 4}],
		 "action": {"type": "RULE_ACTION_TYPE_CHANGE_OVERLAP", "parameters": {"delta": -1}}}]},
	{"collector_config": {"type": "COLLECTOR_TYPE_USERS_ASSESSMENT"},
	 "rules": [
		{"conditions": [{"key": "pool_access_revoked_reason", "operator": "COMPARISON_OPERATOR_EQ", "value": "RESTRICTION"}],
		 "action": {"type": "RULE_ACTION_TYPE_CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": true}}},
		{"conditions": [{"key": "pool_access_revoked_reason", "operator": "COMPARISON_OPERATOR_EQ", "value": "SKILL_CHANGE"},
		                {"key": "skill_id", "operator": "COMPARISON_OPERATOR_EQ", "value": "42"}],
		 "action": {"type": "RULE_ACTION_TYPE_CHANGE_OVERLAP", "parameters": {"delta": 1}}}]}
]`

// tolokaEnums are the API's enum prefixes; Toloka's names are the rest.
var tolokaEnums = regexp.MustCompile(`"(COLLECTOR_TYPE|COMPARISON_OPERATOR|RULE_ACTION_TYPE|RESTRICTION_SCOPE|DURATION_UNIT)_`)

// TestEveryRuleOfSeed004RoundTripsFromRESTToToloka creates a pool over
// REST with every rule of seed 004 and checks, field by field, the
// quality_control.configs Toloka receives: the same rules with Toloka's
// enum names and every value as the requester wrote it (75.5 stays 75.5,
// REJECT stays a string); then the stored pool reads back with the same
// rules.
func TestEveryRuleOfSeed004RoundTripsFromRESTToToloka(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	prj := env.MustProject(env.Ctx(), gatewaytest.MinimalProject(env.MustCredential(env.Ctx(), key)))
	body := fmt.Sprintf(`{"project_id": %q, "private_name": "qc", "will_expire": %q, "reward_per_assignment": "0.05",
		"assignment_max_duration_seconds": 600, "defaults": {"default_overlap_for_new_task_suites": 1},
		"quality_control": {"configs": %s}}`, prj.GetProjectId(), env.Now().Add(240*3600e9).Format("2006-01-02T15:04:05Z"), seed004Configs)
	code, resp := env.REST(http.MethodPost, "/v1/pools", body)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/pools = %d %v", code, resp)
	}
	posts := env.Requests(http.MethodPost, "/api/v1/pools")
	if len(posts) != 1 {
		t.Fatalf("%d POST /pools, want 1", len(posts))
	}
	sent := gatewaytest.DecodeJSON(t, posts[0].Body).(map[string]any)
	// RESTRICTION counts its ban in days: duration_days in Toloka's terms.
	wantJSON := tolokaEnums.ReplaceAllString(seed004Configs, `"`)
	want := gatewaytest.DecodeJSON(t, []byte(wantJSON))
	got := sent["quality_control"].(map[string]any)["configs"]
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("quality_control.configs Toloka received (-want +got):\n%s", diff)
	}
	// The pool reads back with every rule as written.
	var asked crowdgatev1.PoolQualityControl
	if err := protojson.Unmarshal([]byte(`{"configs": `+seed004Configs+`}`), &asked); err != nil {
		t.Fatal(err)
	}
	got2, err := env.Pools.GetPool(env.Ctx(), &crowdgatev1.GetPoolRequest{PoolId: resp["pool"].(map[string]any)["pool_id"].(string)})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&asked, got2.GetPool().GetQualityControl(), protocmp.Transform()); diff != "" {
		t.Errorf("quality control read back (-want +got):\n%s", diff)
	}
	if strings.Contains(string(posts[0].Body), `"value":"7"`) {
		t.Errorf("a count was sent as a string: %s", posts[0].Body)
	}
}

package project

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// qcConfig is one rule set of collector c with one rule.
func qcConfig(c crowdgatev1.CollectorType, params *crowdgatev1.CollectorParameters, a *crowdgatev1.RuleAction, conds ...*crowdgatev1.RuleCondition) []*crowdgatev1.QualityControlConfig {
	return []*crowdgatev1.QualityControlConfig{{
		CollectorConfig: &crowdgatev1.CollectorConfig{Type: c, Parameters: params},
		Rules:           []*crowdgatev1.QualityControlRule{{Conditions: conds, Action: a}},
	}}
}

func cond(key string, op crowdgatev1.ComparisonOperator, v *structpb.Value) *crowdgatev1.RuleCondition {
	return &crowdgatev1.RuleCondition{Key: key, Operator: op, Value: v}
}

// TestQualityControlChecksEachConditionAgainstItsCollector refuses every
// key, operator, value and action a collector does not take, naming the
// field, and accepts each value type a collector does take.
func TestQualityControlChecksEachConditionAgainstItsCollector(t *testing.T) {
	const (
		golden     = crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET
		income     = crowdgatev1.CollectorType_COLLECTOR_TYPE_INCOME
		assessment = crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENTS_ASSESSMENT
		users      = crowdgatev1.CollectorType_COLLECTOR_TYPE_USERS_ASSESSMENT
		training   = crowdgatev1.CollectorType_COLLECTOR_TYPE_TRAINING
		skipped    = crowdgatev1.CollectorType_COLLECTOR_TYPE_SKIPPED_IN_ROW_ASSIGNMENTS
		eq         = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_EQ
		gt         = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_GT
		lt         = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_LT
		cond0      = "configs[0].rules[0].conditions[0]"
		params     = "configs[0].rules[0].action.parameters"
	)
	num, str, boolean := structpb.NewNumberValue, structpb.NewStringValue, structpb.NewBoolValue
	approve := &crowdgatev1.RuleAction{Type: crowdgatev1.RuleActionType_RULE_ACTION_TYPE_APPROVE_ALL_ASSIGNMENTS}
	fromField := func(f string) *crowdgatev1.RuleAction {
		return &crowdgatev1.RuleAction{Type: crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD,
			Parameters: &crowdgatev1.RuleActionParameters{SkillId: "42", FromField: f}}
	}
	overlap := &crowdgatev1.RuleAction{Type: crowdgatev1.RuleActionType_RULE_ACTION_TYPE_CHANGE_OVERLAP, Parameters: &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)}}
	for _, tc := range []struct {
		name string
		cfgs []*crowdgatev1.QualityControlConfig
		// field is the field named, "" when valid; value is what Toloka
		// gets for a valid one.
		field, value string
	}{
		{"rate with a fraction", qcConfig(golden, nil, approve, cond("golden_set_correct_answers_rate", lt, num(75.5))), "", "75.5"},
		{"count", qcConfig(golden, nil, approve, cond("golden_set_answers_count", gt, num(7))), "", "7"},
		{"numeric string as sent", qcConfig(golden, nil, approve, cond("correct_answers_rate", gt, str("40"))), "", `"40"`},
		{"income amount", qcConfig(income, nil, approve, cond("income_sum_for_last_24_hours", gt, num(20.5))), "", "20.5"},
		{"assessment event", qcConfig(assessment, nil, overlap, cond("assessment_event", eq, str("ACCEPT_AFTER_REJECT"))), "", `"ACCEPT_AFTER_REJECT"`},
		{"revoked reason", qcConfig(users, nil, overlap, cond("pool_access_revoked_reason", eq, str("SKILL_CHANGE"))), "", `"SKILL_CHANGE"`},
		{"skill id", qcConfig(users, nil, overlap, cond("skill_id", eq, str("42"))), "", `"42"`},
		{"boolean", qcConfig(training, nil, approve, cond("next_assignment_available", eq, boolean(false))), "", "false"},

		{"key of another collector", qcConfig(golden, nil, approve, cond("skipped_in_row_count", gt, num(1))), cond0 + ".key", ""},
		{"unknown key", qcConfig(skipped, nil, approve, cond("k", gt, num(1))), cond0 + ".key", ""},
		{"rate above 100", qcConfig(golden, nil, approve, cond("golden_set_correct_answers_rate", lt, num(100.5))), cond0 + ".value", ""},
		{"rate below 0", qcConfig(golden, nil, approve, cond("incorrect_answers_rate", lt, num(-1))), cond0 + ".value", ""},
		{"fractional count", qcConfig(golden, nil, approve, cond("golden_set_answers_count", gt, num(7.5))), cond0 + ".value", ""},
		{"negative count", qcConfig(skipped, nil, approve, cond("skipped_in_row_count", gt, num(-1))), cond0 + ".value", ""},
		{"negative income", qcConfig(income, nil, approve, cond("income_sum_for_last_24_hours", gt, num(-0.5))), cond0 + ".value", ""},
		{"string rate", qcConfig(golden, nil, approve, cond("correct_answers_rate", gt, str("most"))), cond0 + ".value", ""},
		{"boolean rate", qcConfig(golden, nil, approve, cond("correct_answers_rate", gt, boolean(true))), cond0 + ".value", ""},
		{"missing value", qcConfig(golden, nil, approve, cond("correct_answers_rate", gt, nil)), cond0 + ".value", ""},
		{"null value", qcConfig(golden, nil, approve, cond("correct_answers_rate", gt, structpb.NewNullValue())), cond0 + ".value", ""},
		{"unknown event", qcConfig(assessment, nil, overlap, cond("assessment_event", eq, str("MAYBE"))), cond0 + ".value", ""},
		{"event as a number", qcConfig(assessment, nil, overlap, cond("assessment_event", eq, num(1))), cond0 + ".value", ""},
		{"ordering an event", qcConfig(assessment, nil, overlap, cond("assessment_event", gt, str("ACCEPT"))), cond0 + ".operator", ""},
		{"ordering a reason", qcConfig(users, nil, overlap, cond("pool_access_revoked_reason", lt, str("RESTRICTION"))), cond0 + ".operator", ""},
		{"empty skill id", qcConfig(users, nil, overlap, cond("skill_id", eq, str(" "))), cond0 + ".value", ""},
		{"number for a boolean", qcConfig(training, nil, approve, cond("next_assignment_available", eq, num(1))), cond0 + ".value", ""},
		{"from_field of the collector", qcConfig(golden, nil, fromField("golden_set_incorrect_answers_rate"), cond("golden_set_answers_count", gt, num(7))), "", "7"},
		{"from_field not a rate", qcConfig(golden, nil, fromField("golden_set_answers_count"), cond("golden_set_answers_count", gt, num(7))), params + ".from_field", ""},
		{"from_field of another collector", qcConfig(golden, nil, fromField("accepted_assignments_rate"), cond("golden_set_answers_count", gt, num(7))), params + ".from_field", ""},
		{"from_field on a collector without rates", qcConfig(skipped, nil, fromField("correct_answers_rate"), cond("skipped_in_row_count", gt, num(7))), "configs[0].rules[0].action.type", ""},
		{"overlap on golden set", qcConfig(golden, nil, overlap, cond("golden_set_answers_count", gt, num(7))), "configs[0].rules[0].action.type", ""},
		{"history on income", qcConfig(income, &crowdgatev1.CollectorParameters{HistorySize: proto.Int32(5)}, approve, cond("income_sum_for_last_24_hours", gt, num(1))), "configs[0].collector_config.parameters.history_size", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := QualityControlConfigs("configs", tc.cfgs)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := string(out[0].Rules[0].Conditions[0].Value); got != tc.value {
					t.Errorf("value sent %s, want %s", got, tc.value)
				}
				return
			}
			var ia *serviceerror.InvalidArgument
			if !errors.As(err, &ia) {
				t.Fatalf("error %v, want INVALID_ARGUMENT naming %s", err, tc.field)
			}
			if diff := cmp.Diff(tc.field, ia.Field); diff != "" {
				t.Errorf("field named (-want +got): %s (%s)", diff, ia.Reason)
			}
		})
	}
}

// TestEveryCollectorHasKeys keeps the table complete: every collector of
// the API takes at least one key.
func TestEveryCollectorHasKeys(t *testing.T) {
	for n, name := range crowdgatev1.CollectorType_name {
		if n == 0 {
			continue
		}
		if len(CollectorKeys(crowdgatev1.CollectorType(n))) == 0 {
			t.Errorf("%s has no condition keys", name)
		}
	}
}

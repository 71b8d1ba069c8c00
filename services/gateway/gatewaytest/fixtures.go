package gatewaytest

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// Cond is a filter condition.
func Cond(category, key, op string, v *structpb.Value) *crowdgatev1.Filter {
	return &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{Category: category, Key: key, Operator: op, Value: v}}}
}

// And is an AND group of filters.
func And(fs ...*crowdgatev1.Filter) *crowdgatev1.Filter {
	return &crowdgatev1.Filter{Node: &crowdgatev1.Filter_And{And: &crowdgatev1.FilterList{Filters: fs}}}
}

// Or is an OR group of filters.
func Or(fs ...*crowdgatev1.Filter) *crowdgatev1.Filter {
	return &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Or{Or: &crowdgatev1.FilterList{Filters: fs}}}
}

// FullProject is a valid project with every optional field set.
func FullProject(credID string) *crowdgatev1.Project {
	p := MinimalProject(credID)
	p.PublicInstructions = `<p>Draw a box around <b>every</b> sign & pole.</p>`
	p.PrivateComment = "batch 7"
	p.BonusPriceMin = "0.50"
	p.BonusPriceMax = "2.5"
	p.TolokerRequirements = &crowdgatev1.TolokerRequirements{
		Countries:    []string{"ru", "KZ"},
		Languages:    []string{"en"},
		AdultAllowed: proto.Bool(true),
		ClientTypes:  []string{"BROWSER", "toloka_app"},
		Filter:       Cond("skill", "42", "GTE", structpb.NewNumberValue(70)),
	}
	p.LocalizationConfig = &crowdgatev1.LocalizationConfig{
		DefaultLanguage: "EN",
		AdditionalLanguages: []*crowdgatev1.AdditionalLanguage{{
			Language:   "RU",
			PublicName: &crowdgatev1.LocalizedText{Value: "Дорожные знаки"},
		}},
	}
	p.QualityControl = &crowdgatev1.ProjectQualityControl{Configs: []*crowdgatev1.QualityControlConfig{{
		CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_SKIPPED_IN_ROW_ASSIGNMENTS},
		Rules: []*crowdgatev1.QualityControlRule{{
			Conditions: []*crowdgatev1.RuleCondition{{Key: "skipped_in_row_count", Operator: crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_GTE, Value: structpb.NewNumberValue(10)}},
			Action: &crowdgatev1.RuleAction{Type: crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2, Parameters: &crowdgatev1.RuleActionParameters{
				Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT, DurationUnit: crowdgatev1.DurationUnit_DURATION_UNIT_DAYS,
				Duration: proto.Int32(10), PrivateComment: "Skipped too many",
			}},
		}},
	}}}
	p.MaxActiveAssignmentsCount = proto.Int32(3)
	p.AssignmentsAutomergeEnabled = true
	return p
}

package project

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// This file is the table of seed 004 and Toloka's quality-control
// reference: which condition keys each collector takes, the type of each
// key's value, and which keys a SET_SKILL_FROM_OUTPUT_FIELD action may copy.

// valueKind is the type of a condition key's value.
type valueKind int

const (
	// kindCount is a whole number, at least 0.
	kindCount valueKind = iota
	// kindRate is a percentage, 0 to 100, fractions allowed (75.5).
	kindRate
	// kindAmount is a sum of money, at least 0.
	kindAmount
	// kindEnum is one of a fixed list of strings; EQ and NE only.
	kindEnum
	// kindID is an id (a non-empty string); EQ and NE only.
	kindID
	// kindBool is true or false; EQ and NE only.
	kindBool
)

// keySpec is a condition key's value type.
type keySpec struct {
	kind valueKind
	// enum lists the allowed values of a kindEnum key.
	enum []string
}

func (k keySpec) equalityOnly() bool {
	return k.kind == kindEnum || k.kind == kindID || k.kind == kindBool
}

var (
	count  = keySpec{kind: kindCount}
	rate   = keySpec{kind: kindRate}
	amount = keySpec{kind: kindAmount}
	skill  = keySpec{kind: kindID}
	flag   = keySpec{kind: kindBool}
)

// AssessmentEvents are the values of ASSIGNMENTS_ASSESSMENT's
// assessment_event key.
var AssessmentEvents = []string{"ACCEPT", "ACCEPT_AFTER_REJECT", "REJECT"}

// PoolAccessRevokedReasons are the values of USERS_ASSESSMENT's
// pool_access_revoked_reason key.
var PoolAccessRevokedReasons = []string{"SKILL_CHANGE", "RESTRICTION"}

// conditionKeys are the keys each collector takes (toloka-kit's conditions,
// seed 004's GOLDEN_SET list).
var conditionKeys = map[crowdgatev1.CollectorType]map[string]keySpec{
	crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET: {
		"total_answers_count": count, "correct_answers_rate": rate, "incorrect_answers_rate": rate,
		"golden_set_answers_count": count, "golden_set_correct_answers_rate": rate, "golden_set_incorrect_answers_rate": rate,
	},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_MAJORITY_VOTE: {
		"total_answers_count": count, "correct_answers_rate": rate, "incorrect_answers_rate": rate,
	},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_INCOME:                     {"income_sum_for_last_24_hours": amount},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_SKIPPED_IN_ROW_ASSIGNMENTS: {"skipped_in_row_count": count},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_ANSWER_COUNT:               {"assignments_accepted_count": count},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME:     {"total_submitted_count": count, "fast_submitted_count": count},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_ACCEPTANCE_RATE: {
		"total_assignments_count": count, "accepted_assignments_rate": rate, "rejected_assignments_rate": rate,
	},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENTS_ASSESSMENT: {
		"pending_assignments_count": count, "accepted_assignments_count": count, "rejected_assignments_count": count,
		"assessment_event": {kind: kindEnum, enum: AssessmentEvents},
	},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_USERS_ASSESSMENT: {
		"pool_access_revoked_reason": {kind: kindEnum, enum: PoolAccessRevokedReasons},
		"skill_id":                   skill,
	},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_TRAINING: {
		"submitted_assignments_count": count, "total_answers_count": count, "correct_answers_rate": rate,
		"incorrect_answers_rate": rate, "next_assignment_available": flag,
	},
	crowdgatev1.CollectorType_COLLECTOR_TYPE_CAPTCHA: {
		"stored_results_count": count, "success_rate": rate, "fail_rate": rate,
	},
}

// historyCollectors take a history_size parameter.
var historyCollectors = map[crowdgatev1.CollectorType]bool{
	crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET:             true,
	crowdgatev1.CollectorType_COLLECTOR_TYPE_MAJORITY_VOTE:          true,
	crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME: true,
	crowdgatev1.CollectorType_COLLECTOR_TYPE_ACCEPTANCE_RATE:        true,
	crowdgatev1.CollectorType_COLLECTOR_TYPE_CAPTCHA:                true,
}

// CollectorKeys returns the condition keys collector t takes, sorted.
func CollectorKeys(t crowdgatev1.CollectorType) []string {
	var out []string
	for k := range conditionKeys[t] {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// OutputFields returns the fields a SET_SKILL_FROM_OUTPUT_FIELD action of a
// collector t rule may copy into a skill, sorted: the collector's rates,
// and seed 004's wrong_answers_rate where the collector counts incorrect
// answers.
func OutputFields(t crowdgatev1.CollectorType) []string {
	var out []string
	for k, spec := range conditionKeys[t] {
		if spec.kind == kindRate {
			out = append(out, k)
		}
		if k == "incorrect_answers_rate" {
			out = append(out, "wrong_answers_rate")
		}
	}
	slices.Sort(out)
	return out
}

// value validates a condition's value for this key and returns it as the
// JSON Toloka receives: numbers as given (75.5, 7), numeric strings as
// strings (Toloka's own examples send "1"), enum and id strings, booleans.
func (k keySpec) value(field, key string, v *structpb.Value) (json.RawMessage, error) {
	if v == nil || v.GetKind() == nil {
		return nil, bad(field, "is required: %s", k.describe())
	}
	if _, isNull := v.GetKind().(*structpb.Value_NullValue); isNull {
		return nil, bad(field, "is required: %s", k.describe())
	}
	switch k.kind {
	case kindCount, kindRate, kindAmount:
		var n float64
		var raw json.RawMessage
		switch x := v.GetKind().(type) {
		case *structpb.Value_NumberValue:
			n = x.NumberValue
			if math.IsNaN(n) || math.IsInf(n, 0) {
				return nil, bad(field, "must be a finite number")
			}
			raw = json.RawMessage(strconv.FormatFloat(n, 'f', -1, 64))
		case *structpb.Value_StringValue:
			f, err := strconv.ParseFloat(strings.TrimSpace(x.StringValue), 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, bad(field, "%s takes %s, got the string %q", key, k.describe(), x.StringValue)
			}
			n = f
			raw, _ = json.Marshal(x.StringValue)
		default:
			return nil, bad(field, "%s takes %s", key, k.describe())
		}
		switch {
		case k.kind == kindCount && (n < 0 || n != math.Trunc(n) || n > math.MaxInt32):
			return nil, bad(field, "%s is a count: a whole number, at least 0, got %v", key, n)
		case k.kind == kindRate && (n < 0 || n > 100):
			return nil, bad(field, "%s is a percentage: between 0 and 100, got %v", key, n)
		case k.kind == kindAmount && n < 0:
			return nil, bad(field, "%s is an amount: at least 0, got %v", key, n)
		}
		return raw, nil
	case kindEnum:
		s, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok || !oneOf(s.StringValue, k.enum) {
			return nil, bad(field, "%s takes %s", key, k.describe())
		}
		return json.Marshal(s.StringValue)
	case kindID:
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			if strings.TrimSpace(x.StringValue) == "" {
				return nil, bad(field, "%s takes %s", key, k.describe())
			}
			return json.Marshal(x.StringValue)
		case *structpb.Value_NumberValue:
			if x.NumberValue < 0 || x.NumberValue != math.Trunc(x.NumberValue) || x.NumberValue > 1<<53 {
				return nil, bad(field, "%s takes %s", key, k.describe())
			}
			return json.Marshal(strconv.FormatFloat(x.NumberValue, 'f', -1, 64))
		}
		return nil, bad(field, "%s takes %s", key, k.describe())
	case kindBool:
		b, ok := v.GetKind().(*structpb.Value_BoolValue)
		if !ok {
			return nil, bad(field, "%s takes %s", key, k.describe())
		}
		return json.RawMessage(strconv.FormatBool(b.BoolValue)), nil
	}
	return nil, bad(field, "unknown value type")
}

func (k keySpec) describe() string {
	switch k.kind {
	case kindCount:
		return "a whole number, at least 0"
	case kindRate:
		return "a percentage from 0 to 100 such as 75.5"
	case kindAmount:
		return "an amount, at least 0"
	case kindEnum:
		return "one of " + strings.Join(k.enum, ", ")
	case kindID:
		return "a skill id"
	case kindBool:
		return "true or false"
	}
	return "a value"
}

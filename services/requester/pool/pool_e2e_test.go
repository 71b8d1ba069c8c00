package pool_test

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
)

// start serves the gateway in front of the emulator on a fake clock, so
// waiting for Toloka's operations takes no real time.
func start(t *testing.T) *gatewaytest.Env {
	t.Helper()
	return gatewaytest.Start(t, gatewaytest.Options{Clock: fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))})
}

func distribution(scope string, intervals ...[3]int32) *crowdgatev1.TaskDistributionFunction {
	d := &crowdgatev1.TaskDistributionFunction{Scope: scope, Distribution: "UNIFORM", WindowDays: 7}
	for _, iv := range intervals {
		d.Intervals = append(d.Intervals, &crowdgatev1.DistributionInterval{From: iv[0], To: iv[1], Frequency: iv[2]})
	}
	return d
}

func rule(action *crowdgatev1.RuleAction, conds ...*crowdgatev1.RuleCondition) *crowdgatev1.QualityControlRule {
	return &crowdgatev1.QualityControlRule{Conditions: conds, Action: action}
}

func qcCondV(key string, op crowdgatev1.ComparisonOperator, v *structpb.Value) *crowdgatev1.RuleCondition {
	return &crowdgatev1.RuleCondition{Key: key, Operator: op, Value: v}
}

func qcCond(key string, op crowdgatev1.ComparisonOperator, v float64) *crowdgatev1.RuleCondition {
	return &crowdgatev1.RuleCondition{Key: key, Operator: op, Value: structpb.NewNumberValue(v)}
}

func action(t crowdgatev1.RuleActionType, p *crowdgatev1.RuleActionParameters) *crowdgatev1.RuleAction {
	return &crowdgatev1.RuleAction{Type: t, Parameters: p}
}

const (
	gt  = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_GT
	lt  = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_LT
	gte = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_GTE
	eq  = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_EQ
)

// fullPool sets every field of seed 003 and every kind of seed 004 rule;
// its training_requirement names the Toloka training trainingID.
func fullPool(projectID, trainingID string, now time.Time) *crowdgatev1.Pool {
	p := gatewaytest.ValidPool(projectID, now)
	p.PrivateComment = "first batch"
	p.PublicDescription = "Boxes around signs"
	p.MayContainAdultContent = true
	p.RewardPerAssignment = "0.020"
	p.AutoAcceptSolutions = proto.Bool(false)
	p.AutoAcceptPeriodDay = proto.Int32(7)
	p.AutoCloseAfterCompleteDelaySeconds = proto.Int64(60)
	p.Filter = gatewaytest.And(
		gatewaytest.Cond("profile", "education", "EQ", structpb.NewStringValue("HIGH")),
		gatewaytest.Or(gatewaytest.Cond("computed", "region_by_ip", "IN", structpb.NewNumberValue(225)), gatewaytest.Cond("computed", "region_by_ip", "IN", structpb.NewNumberValue(187))),
	)
	p.QualityControl = &crowdgatev1.PoolQualityControl{
		TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPoolId: trainingID, TrainingPassingSkillValue: 70},
		CaptchaFrequency:    crowdgatev1.CaptchaFrequency_CAPTCHA_FREQUENCY_LOW,
		Configs: []*crowdgatev1.QualityControlConfig{
			{
				CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET,
					Parameters: &crowdgatev1.CollectorParameters{HistorySize: proto.Int32(10)}},
				Rules: []*crowdgatev1.QualityControlRule{
					rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD,
						&crowdgatev1.RuleActionParameters{SkillId: "42", FromField: "golden_set_correct_answers_rate"}),
						qcCond("golden_set_answers_count", gt, 7)),
					rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2,
						&crowdgatev1.RuleActionParameters{Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT,
							DurationUnit: crowdgatev1.DurationUnit_DURATION_UNIT_DAYS, Duration: proto.Int32(10), PrivateComment: "Control tasks were not completed"}),
						qcCond("golden_set_answers_count", gt, 7), qcCond("golden_set_correct_answers_rate", lt, 75)),
				},
			},
			{
				CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_MAJORITY_VOTE,
					Parameters: &crowdgatev1.CollectorParameters{AnswerThreshold: proto.Int32(3)}},
				Rules: []*crowdgatev1.QualityControlRule{rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL,
					&crowdgatev1.RuleActionParameters{SkillId: "43", SkillValue: proto.Int32(0)}), qcCond("correct_answers_rate", lt, 50))},
			},
			{
				CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME,
					Parameters: &crowdgatev1.CollectorParameters{HistorySizeSubmit: proto.Int32(5), FastSubmitThresholdSeconds: proto.Int32(20)}},
				Rules: []*crowdgatev1.QualityControlRule{rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_REJECT_ALL_ASSIGNMENTS,
					&crowdgatev1.RuleActionParameters{PublicComment: "Too fast"}), qcCond("fast_submitted_count", gte, 3))},
			},
			{
				CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENTS_ASSESSMENT},
				Rules: []*crowdgatev1.QualityControlRule{
					rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_CHANGE_OVERLAP,
						&crowdgatev1.RuleActionParameters{Delta: proto.Int32(1), OpenPool: proto.Bool(true)}), qcCondV("assessment_event", eq, structpb.NewStringValue("REJECT"))),
					rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_APPROVE_ALL_ASSIGNMENTS, nil), qcCond("accepted_assignments_count", gte, 10)),
				},
			},
			{
				CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_SKIPPED_IN_ROW_ASSIGNMENTS},
				Rules: []*crowdgatev1.QualityControlRule{rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION,
					&crowdgatev1.RuleActionParameters{Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL, Duration: proto.Int32(3)}),
					qcCond("skipped_in_row_count", gte, 5))},
			},
		},
		CheckpointsConfig: &crowdgatev1.CheckpointsConfig{
			RealSettings: &crowdgatev1.CheckpointSettings{TargetOverlap: 5, TaskDistributionFunction: distribution("PROJECT", [3]int32{1, 100, 5}, [3]int32{101, 1000, 25})},
		},
	}
	p.DynamicPricingConfig = &crowdgatev1.DynamicPricingConfig{Type: "SKILL", SkillId: "1289", Intervals: []*crowdgatev1.PricingInterval{
		{From: 0, To: proto.Int32(60), RewardPerAssignment: "0.03"}, {From: 61, To: proto.Int32(100), RewardPerAssignment: "0.040"},
	}}
	p.DynamicOverlapConfig = &crowdgatev1.DynamicOverlapConfig{Type: "BASIC", MaxOverlap: 5, MinConfidence: 0.9, AnswerWeightSkillId: "1289",
		Fields: []*crowdgatev1.DynamicOverlapField{{Name: "result"}}}
	p.MixerConfig = &crowdgatev1.MixerConfig{
		RealTasksCount: 6, GoldenTasksCount: 1, TrainingTasksCount: 0,
		MinRealTasksCount: proto.Int32(2), MinGoldenTasksCount: proto.Int32(0),
		ForceLastAssignment: proto.Bool(true), ForceLastAssignmentDelaySeconds: proto.Int32(10),
		MixTasksInCreationOrder: proto.Bool(true), ShuffleTasksInTaskSuite: proto.Bool(false),
		TrainingTaskDistributionFunction: distribution("POOL", [3]int32{0, 25, 5}, [3]int32{26, 1000, 25}),
	}
	p.Defaults = &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 3, DefaultOverlapForNewTasks: proto.Int32(3)}
	p.AssignmentsIssuingConfig = &crowdgatev1.AssignmentsIssuingConfig{IssueTaskSuitesInCreationOrder: false}
	p.Priority = proto.Int32(10)
	return p
}

const fullPoolJSON = `{
	"project_id": "%PROJECT%",
	"private_name": "Signs, batch 1",
	"private_comment": "first batch",
	"public_description": "Boxes around signs",
	"may_contain_adult_content": true,
	"will_expire": "2026-03-31T12:00:00",
	"reward_per_assignment": 0.020,
	"dynamic_pricing_config": {"type": "SKILL", "skill_id": "1289", "intervals": [
		{"from": 0, "to": 60, "reward_per_assignment": 0.03},
		{"from": 61, "to": 100, "reward_per_assignment": 0.040}]},
	"assignment_max_duration_seconds": 600,
	"auto_accept_solutions": false,
	"auto_accept_period_day": 7,
	"auto_close_after_complete_delay_seconds": 60,
	"assignments_issuing_config": {"issue_task_suites_in_creation_order": false},
	"filter": {"and": [
		{"or": [{"category": "profile", "key": "country", "operator": "EQ", "value": "RU"},
		        {"category": "profile", "key": "country", "operator": "EQ", "value": "KZ"}]},
		{"or": [{"category": "profile", "key": "languages", "operator": "IN", "value": "EN"}]},
		{"or": [{"category": "computed", "key": "client_type", "operator": "EQ", "value": "BROWSER"},
		        {"category": "computed", "key": "client_type", "operator": "EQ", "value": "TOLOKA_APP"}]},
		{"category": "profile", "key": "adult_allowed", "operator": "EQ", "value": true},
		{"category": "skill", "key": "42", "operator": "GTE", "value": 70},
		{"category": "profile", "key": "education", "operator": "EQ", "value": "HIGH"},
		{"or": [{"category": "computed", "key": "region_by_ip", "operator": "IN", "value": 225},
		        {"category": "computed", "key": "region_by_ip", "operator": "IN", "value": 187}]}
	]},
	"quality_control": {
		"training_requirement": {"training_pool_id": "%TRAINING%", "training_passing_skill_value": 70},
		"captcha_frequency": "LOW",
		"configs": [
			{"collector_config": {"type": "GOLDEN_SET", "parameters": {"history_size": 10}},
			 "rules": [
				{"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7}],
				 "action": {"type": "SET_SKILL_FROM_OUTPUT_FIELD", "parameters": {"skill_id": "42", "from_field": "golden_set_correct_answers_rate"}}},
				{"conditions": [{"key": "golden_set_answers_count", "operator": "GT", "value": 7},
				                {"key": "golden_set_correct_answers_rate", "operator": "LT", "value": 75}],
				 "action": {"type": "RESTRICTION_V2", "parameters": {"scope": "PROJECT", "duration_unit": "DAYS", "duration": 10, "private_comment": "Control tasks were not completed"}}}]},
			{"collector_config": {"type": "MAJORITY_VOTE", "parameters": {"answer_threshold": 3}},
			 "rules": [{"conditions": [{"key": "correct_answers_rate", "operator": "LT", "value": 50}],
			            "action": {"type": "SET_SKILL", "parameters": {"skill_id": "43", "skill_value": 0}}}]},
			{"collector_config": {"type": "ASSIGNMENT_SUBMIT_TIME", "parameters": {"history_size": 5, "fast_submit_threshold_seconds": 20}},
			 "rules": [{"conditions": [{"key": "fast_submitted_count", "operator": "GTE", "value": 3}],
			            "action": {"type": "REJECT_ALL_ASSIGNMENTS", "parameters": {"public_comment": "Too fast"}}}]},
			{"collector_config": {"type": "ASSIGNMENTS_ASSESSMENT"},
			 "rules": [
				{"conditions": [{"key": "assessment_event", "operator": "EQ", "value": "REJECT"}],
				 "action": {"type": "CHANGE_OVERLAP", "parameters": {"delta": 1, "open_pool": true}}},
				{"conditions": [{"key": "accepted_assignments_count", "operator": "GTE", "value": 10}],
				 "action": {"type": "APPROVE_ALL_ASSIGNMENTS"}}]},
			{"collector_config": {"type": "SKIPPED_IN_ROW_ASSIGNMENTS"},
			 "rules": [{"conditions": [{"key": "skipped_in_row_count", "operator": "GTE", "value": 5}],
			            "action": {"type": "RESTRICTION", "parameters": {"scope": "POOL", "duration_days": 3}}}]}
		],
		"checkpoints_config": {"real_settings": {"target_overlap": 5, "task_distribution_function": {
			"scope": "PROJECT", "distribution": "UNIFORM", "window_days": 7,
			"intervals": [{"from": 1, "to": 100, "frequency": 5}, {"from": 101, "to": 1000, "frequency": 25}]}}}
	},
	"dynamic_overlap_config": {"type": "BASIC", "max_overlap": 5, "min_confidence": 0.9, "answer_weight_skill_id": "1289", "fields": [{"name": "result"}]},
	"defaults": {"default_overlap_for_new_task_suites": 3, "default_overlap_for_new_tasks": 3},
	"mixer_config": {
		"real_tasks_count": 6, "golden_tasks_count": 1, "training_tasks_count": 0,
		"min_real_tasks_count": 2, "min_golden_tasks_count": 0,
		"force_last_assignment": true, "force_last_assignment_delay_seconds": 10,
		"mix_tasks_in_creation_order": true, "shuffle_tasks_in_task_suite": false,
		"training_task_distribution_function": {"scope": "POOL", "distribution": "UNIFORM", "window_days": 7,
			"intervals": [{"from": 0, "to": 25, "frequency": 5}, {"from": 26, "to": 1000, "frequency": 25}]}
	},
	"priority": 10
}`

// TestCreatePoolSendsEveryFieldExactly checks, field by field, the pool
// Toloka receives for a pool with every field set (the project's Toloker
// requirements folded into its filter), and that the stored pool is the
// request plus the output-only fields.
func TestCreatePoolSendsEveryFieldExactly(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	prj := env.MustProject(env.Ctx(), gatewaytest.FullProject(env.MustCredential(env.Ctx(), key)))
	// Toloka takes a training_requirement only naming a training of the
	// account; it is named by its Toloka id, which is sent as is.
	tr := env.MustPool(env.Ctx(), trainingPool(prj.GetProjectId())).GetTolokaPoolId()
	p := env.MustPool(env.Ctx(), fullPool(prj.GetProjectId(), tr, env.Now()))

	posts := env.Requests(http.MethodPost, "/api/v1/pools")
	if len(posts) != 1 || posts[0].Status != http.StatusCreated {
		t.Fatalf("POST /pools = %+v, want one, created", posts)
	}
	want := gatewaytest.DecodeJSON(t, []byte(strings.NewReplacer("%PROJECT%", prj.GetTolokaProjectId(), "%TRAINING%", tr).Replace(fullPoolJSON)))
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, posts[0].Body)); diff != "" {
		t.Errorf("pool sent to Toloka (-want +got):\n%s", diff)
	}

	if p.GetTolokaPoolId() == "" || p.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED || p.GetCreateTime() == nil ||
		p.GetProjectId() != prj.GetProjectId() || !strings.HasPrefix(p.GetPoolId(), "pool_") {
		t.Errorf("created pool = %v", p)
	}
	// The stored pool is what was asked for, plus the output-only fields.
	asked := fullPool(prj.GetProjectId(), tr, env.Now())
	asked.PoolId, asked.TenantId, asked.TolokaPoolId, asked.Status, asked.CreateTime = p.GetPoolId(), "default", p.GetTolokaPoolId(), p.GetStatus(), p.GetCreateTime()
	if !proto.Equal(asked, p) {
		t.Errorf("stored pool differs from the request:\n got %v\nwant %v", p, asked)
	}
}

// TestCreatePoolOverREST creates a pool over REST (proto JSON: decimal
// strings, int64 as strings, RFC 3339 times), checks what Toloka receives,
// and answers an invalid value with 400 naming the field.
func TestCreatePoolOverREST(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	prj := env.MustProject(env.Ctx(), gatewaytest.MinimalProject(env.MustCredential(env.Ctx(), key)))
	code, body := env.REST(http.MethodPost, "/v1/pools", `{
		"project_id": "`+prj.GetProjectId()+`",
		"private_name": "REST pool",
		"will_expire": "2026-04-01T00:00:00.250Z",
		"reward_per_assignment": "10.52",
		"assignment_max_duration_seconds": "300",
		"filter": {"condition": {"category": "profile", "key": "languages", "operator": "IN", "value": "EN"}},
		"defaults": {"default_overlap_for_new_task_suites": 2}
	}`)
	if code != http.StatusOK {
		t.Fatalf("REST CreatePool = %d %v", code, body)
	}
	posts := env.Requests(http.MethodPost, "/api/v1/pools")
	want := gatewaytest.DecodeJSON(t, []byte(`{
		"project_id": "`+prj.GetTolokaProjectId()+`",
		"private_name": "REST pool",
		"may_contain_adult_content": false,
		"will_expire": "2026-04-01T00:00:00.250",
		"reward_per_assignment": 10.52,
		"assignment_max_duration_seconds": 300,
		"filter": {"and": [{"category": "profile", "key": "languages", "operator": "IN", "value": "EN"}]},
		"defaults": {"default_overlap_for_new_task_suites": 2}
	}`))
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, posts[0].Body)); diff != "" {
		t.Errorf("pool sent to Toloka (-want +got):\n%s", diff)
	}
	pool := body["pool"].(map[string]any)
	if pool["status"] != "POOL_STATUS_CLOSED" || pool["reward_per_assignment"] != "10.52" {
		t.Errorf("REST pool = %v", pool)
	}

	// An invalid value over REST is a 400 naming the field.
	code, body = env.REST(http.MethodPost, "/v1/pools", `{"project_id": "`+prj.GetProjectId()+`", "private_name": "x",
		"will_expire": "2026-04-01T00:00:00Z", "reward_per_assignment": "0.001", "assignment_max_duration_seconds": "300",
		"defaults": {"default_overlap_for_new_task_suites": 1}}`)
	if code != http.StatusBadRequest || !strings.Contains(body["message"].(string), "pool.reward_per_assignment") {
		t.Errorf("REST invalid reward = %d %v", code, body)
	}
}

func qcPool(cfg *crowdgatev1.QualityControlConfig) func(p *crowdgatev1.Pool) {
	return func(p *crowdgatev1.Pool) {
		p.QualityControl = &crowdgatev1.PoolQualityControl{Configs: []*crowdgatev1.QualityControlConfig{cfg}}
	}
}

func golden(rules ...*crowdgatev1.QualityControlRule) *crowdgatev1.QualityControlConfig {
	return &crowdgatev1.QualityControlConfig{CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET}, Rules: rules}
}

func actionPool(t crowdgatev1.RuleActionType, params *crowdgatev1.RuleActionParameters) func(p *crowdgatev1.Pool) {
	return qcPool(golden(rule(action(t, params), qcCond("golden_set_answers_count", gt, 7))))
}

// TestCreatePoolValidatesEveryRangeBeforeToloka refuses each out-of-range
// or inconsistent pool field with INVALID_ARGUMENT naming it, before
// Toloka; the base pool is valid, and an unknown or another tenant's
// project is NOT_FOUND.
func TestCreatePoolValidatesEveryRangeBeforeToloka(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	prj := env.MustProject(env.Ctx(), gatewaytest.MinimalProject(env.MustCredential(env.Ctx(), key)))
	now := env.Now()
	const (
		v2          = crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2
		setSkill    = crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL
		fromField   = crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD
		overlap     = crowdgatev1.RuleActionType_RULE_ACTION_TYPE_CHANGE_OVERLAP
		rejectAll   = crowdgatev1.RuleActionType_RULE_ACTION_TYPE_REJECT_ALL_ASSIGNMENTS
		restriction = crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION
		days        = crowdgatev1.DurationUnit_DURATION_UNIT_DAYS
		permanent   = crowdgatev1.DurationUnit_DURATION_UNIT_PERMANENT
		scopePool   = crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_POOL
	)
	deep := gatewaytest.Cond("profile", "country", "EQ", structpb.NewStringValue("RU"))
	for range 11 {
		deep = gatewaytest.And(deep)
	}
	var many []*crowdgatev1.Filter
	for i := range 200 {
		many = append(many, gatewaytest.Cond("computed", "region_by_ip", "IN", structpb.NewNumberValue(float64(i))))
	}
	mixer := func(m *crowdgatev1.MixerConfig) func(p *crowdgatev1.Pool) {
		return func(p *crowdgatev1.Pool) { p.MixerConfig = m }
	}
	checkpoint := func(s *crowdgatev1.CheckpointSettings) func(p *crowdgatev1.Pool) {
		return func(p *crowdgatev1.Pool) {
			p.QualityControl = &crowdgatev1.PoolQualityControl{CheckpointsConfig: &crowdgatev1.CheckpointsConfig{GoldenSettings: s}}
		}
	}
	overlapCfg := func(change func(d *crowdgatev1.DynamicOverlapConfig)) func(p *crowdgatev1.Pool) {
		return func(p *crowdgatev1.Pool) {
			d := &crowdgatev1.DynamicOverlapConfig{MaxOverlap: 5, MinConfidence: 0.8, AnswerWeightSkillId: "1", Fields: []*crowdgatev1.DynamicOverlapField{{Name: "r"}}}
			change(d)
			p.DynamicOverlapConfig = d
		}
	}
	pricing := func(change func(d *crowdgatev1.DynamicPricingConfig)) func(p *crowdgatev1.Pool) {
		return func(p *crowdgatev1.Pool) {
			d := &crowdgatev1.DynamicPricingConfig{SkillId: "1", Intervals: []*crowdgatev1.PricingInterval{{From: 0, To: proto.Int32(50), RewardPerAssignment: "0.02"}, {From: 51, To: proto.Int32(100), RewardPerAssignment: "0.03"}}}
			change(d)
			p.DynamicPricingConfig = d
		}
	}
	for _, tc := range []struct {
		name   string
		change func(p *crowdgatev1.Pool)
		field  string
	}{
		{"no project", func(p *crowdgatev1.Pool) { p.ProjectId = "" }, "pool.project_id"},
		{"no private name", func(p *crowdgatev1.Pool) { p.PrivateName = "" }, "pool.private_name"},
		{"no will_expire", func(p *crowdgatev1.Pool) { p.WillExpire = nil }, "pool.will_expire"},
		{"will_expire now", func(p *crowdgatev1.Pool) { p.WillExpire = timestamppb.New(now) }, "pool.will_expire"},
		{"will_expire past", func(p *crowdgatev1.Pool) { p.WillExpire = timestamppb.New(now.Add(-time.Hour)) }, "pool.will_expire"},
		{"will_expire invalid", func(p *crowdgatev1.Pool) { p.WillExpire = &timestamppb.Timestamp{Seconds: 1e13} }, "pool.will_expire"},
		{"no reward", func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "" }, "pool.reward_per_assignment"},
		{"reward below a cent", func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "0.009" }, "pool.reward_per_assignment"},
		{"reward zero", func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "0" }, "pool.reward_per_assignment"},
		{"reward negative", func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "-1" }, "pool.reward_per_assignment"},
		{"reward float syntax", func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "1e-2" }, "pool.reward_per_assignment"},
		{"no duration", func(p *crowdgatev1.Pool) { p.AssignmentMaxDurationSeconds = 0 }, "pool.assignment_max_duration_seconds"},
		{"duration 4", func(p *crowdgatev1.Pool) { p.AssignmentMaxDurationSeconds = 4 }, "pool.assignment_max_duration_seconds"},
		{"duration negative", func(p *crowdgatev1.Pool) { p.AssignmentMaxDurationSeconds = -60 }, "pool.assignment_max_duration_seconds"},
		{"review days 0", func(p *crowdgatev1.Pool) { p.AutoAcceptPeriodDay = proto.Int32(0) }, "pool.auto_accept_period_day"},
		{"review days 22", func(p *crowdgatev1.Pool) { p.AutoAcceptPeriodDay = proto.Int32(22) }, "pool.auto_accept_period_day"},
		{"close delay negative", func(p *crowdgatev1.Pool) { p.AutoCloseAfterCompleteDelaySeconds = proto.Int64(-1) }, "pool.auto_close_after_complete_delay_seconds"},
		{"close delay over 3 days", func(p *crowdgatev1.Pool) { p.AutoCloseAfterCompleteDelaySeconds = proto.Int64(259201) }, "pool.auto_close_after_complete_delay_seconds"},
		{"priority -101", func(p *crowdgatev1.Pool) { p.Priority = proto.Int32(-101) }, "pool.priority"},
		{"priority 101", func(p *crowdgatev1.Pool) { p.Priority = proto.Int32(101) }, "pool.priority"},
		{"no defaults", func(p *crowdgatev1.Pool) { p.Defaults = nil }, "pool.defaults"},
		{"default overlap 0", func(p *crowdgatev1.Pool) { p.Defaults.DefaultOverlapForNewTaskSuites = 0 }, "pool.defaults.default_overlap_for_new_task_suites"},
		{"default overlap negative", func(p *crowdgatev1.Pool) { p.Defaults.DefaultOverlapForNewTaskSuites = -2 }, "pool.defaults.default_overlap_for_new_task_suites"},
		{"default task overlap 0", func(p *crowdgatev1.Pool) { p.Defaults.DefaultOverlapForNewTasks = proto.Int32(0) }, "pool.defaults.default_overlap_for_new_tasks"},

		{"training pool missing", func(p *crowdgatev1.Pool) {
			p.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPassingSkillValue: 50}}
		}, "pool.quality_control.training_requirement.training_pool_id"},
		{"training skill 101", func(p *crowdgatev1.Pool) {
			p.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPoolId: "1", TrainingPassingSkillValue: 101}}
		}, "pool.quality_control.training_requirement.training_passing_skill_value"},
		{"training skill negative", func(p *crowdgatev1.Pool) {
			p.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPoolId: "1", TrainingPassingSkillValue: -1}}
		}, "pool.quality_control.training_requirement.training_passing_skill_value"},
		{"unknown captcha", func(p *crowdgatev1.Pool) {
			p.QualityControl = &crowdgatev1.PoolQualityControl{CaptchaFrequency: 9}
		}, "pool.quality_control.captcha_frequency"},
		{"checkpoint overlap 0", checkpoint(&crowdgatev1.CheckpointSettings{TargetOverlap: 0, TaskDistributionFunction: distribution("POOL", [3]int32{1, 10, 2})}),
			"pool.quality_control.checkpoints_config.golden_settings.target_overlap"},
		{"checkpoint without distribution", checkpoint(&crowdgatev1.CheckpointSettings{TargetOverlap: 3}),
			"pool.quality_control.checkpoints_config.golden_settings.task_distribution_function"},
		{"checkpoint bad scope", checkpoint(&crowdgatev1.CheckpointSettings{TargetOverlap: 3, TaskDistributionFunction: distribution("WORLD", [3]int32{1, 10, 2})}),
			"pool.quality_control.checkpoints_config.golden_settings.task_distribution_function.scope"},

		{"collector missing", qcPool(&crowdgatev1.QualityControlConfig{Rules: []*crowdgatev1.QualityControlRule{rule(action(setSkill, nil))}}),
			"pool.quality_control.configs[0].collector_config"},
		{"collector type unset", qcPool(&crowdgatev1.QualityControlConfig{CollectorConfig: &crowdgatev1.CollectorConfig{}}),
			"pool.quality_control.configs[0].collector_config.type"},
		{"no rules", qcPool(golden()), "pool.quality_control.configs[0].rules"},
		{"rule without conditions", qcPool(golden(rule(action(overlap, &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)})))),
			"pool.quality_control.configs[0].rules[0].conditions"},
		{"condition without key", qcPool(golden(rule(action(overlap, &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)}), qcCond("", gt, 1)))),
			"pool.quality_control.configs[0].rules[0].conditions[0].key"},
		{"condition without operator", qcPool(golden(rule(action(overlap, &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)}), qcCond("golden_set_answers_count", 0, 1)))),
			"pool.quality_control.configs[0].rules[0].conditions[0].operator"},
		{"rule without action", qcPool(golden(rule(nil, qcCond("golden_set_answers_count", gt, 1)))), "pool.quality_control.configs[0].rules[0].action"},
		{"action type unset", actionPool(0, nil), "pool.quality_control.configs[0].rules[0].action.type"},
		{"set skill without skill", actionPool(setSkill, &crowdgatev1.RuleActionParameters{SkillValue: proto.Int32(5)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.skill_id"},
		{"set skill without value", actionPool(setSkill, &crowdgatev1.RuleActionParameters{SkillId: "1"}),
			"pool.quality_control.configs[0].rules[0].action.parameters.skill_value"},
		{"set skill value 101", actionPool(setSkill, &crowdgatev1.RuleActionParameters{SkillId: "1", SkillValue: proto.Int32(101)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.skill_value"},
		{"set skill value negative", actionPool(setSkill, &crowdgatev1.RuleActionParameters{SkillId: "1", SkillValue: proto.Int32(-1)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.skill_value"},
		{"skill from field without skill", actionPool(fromField, &crowdgatev1.RuleActionParameters{FromField: "correct_answers_rate"}),
			"pool.quality_control.configs[0].rules[0].action.parameters.skill_id"},
		{"skill from field without field", actionPool(fromField, &crowdgatev1.RuleActionParameters{SkillId: "1"}),
			"pool.quality_control.configs[0].rules[0].action.parameters.from_field"},
		{"change overlap without delta", qcPool(&crowdgatev1.QualityControlConfig{CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENTS_ASSESSMENT},
			Rules: []*crowdgatev1.QualityControlRule{rule(action(overlap, &crowdgatev1.RuleActionParameters{OpenPool: proto.Bool(true)}), qcCond("rejected_assignments_count", gt, 1))}}),
			"pool.quality_control.configs[0].rules[0].action.parameters.delta"},
		{"restriction v2 without scope", actionPool(v2, &crowdgatev1.RuleActionParameters{DurationUnit: days, Duration: proto.Int32(1)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.scope"},
		{"restriction v2 without unit", actionPool(v2, &crowdgatev1.RuleActionParameters{Scope: scopePool, Duration: proto.Int32(1)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.duration_unit"},
		{"restriction v2 without duration", actionPool(v2, &crowdgatev1.RuleActionParameters{Scope: scopePool, DurationUnit: days}),
			"pool.quality_control.configs[0].rules[0].action.parameters.duration"},
		{"restriction v2 duration 0", actionPool(v2, &crowdgatev1.RuleActionParameters{Scope: scopePool, DurationUnit: days, Duration: proto.Int32(0)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.duration"},
		{"permanent ban with duration", actionPool(v2, &crowdgatev1.RuleActionParameters{Scope: scopePool, DurationUnit: permanent, Duration: proto.Int32(3)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.duration"},
		{"restriction without scope", actionPool(restriction, &crowdgatev1.RuleActionParameters{Duration: proto.Int32(3)}),
			"pool.quality_control.configs[0].rules[0].action.parameters.scope"},
		{"reject all without comment", actionPool(rejectAll, &crowdgatev1.RuleActionParameters{}),
			"pool.quality_control.configs[0].rules[0].action.parameters.public_comment"},
		{"parameter of another action", actionPool(v2, &crowdgatev1.RuleActionParameters{Scope: scopePool, DurationUnit: permanent, SkillId: "1"}),
			"pool.quality_control.configs[0].rules[0].action.parameters.skill_id"},
		{"majority vote without threshold", qcPool(&crowdgatev1.QualityControlConfig{
			CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_MAJORITY_VOTE},
			Rules:           []*crowdgatev1.QualityControlRule{rule(action(overlap, &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)}), qcCond("k", gt, 1))}}),
			"pool.quality_control.configs[0].collector_config.parameters.answer_threshold"},
		{"submit time without threshold", qcPool(&crowdgatev1.QualityControlConfig{
			CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME, Parameters: &crowdgatev1.CollectorParameters{HistorySizeSubmit: proto.Int32(5)}},
			Rules:           []*crowdgatev1.QualityControlRule{rule(action(overlap, &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)}), qcCond("k", gt, 1))}}),
			"pool.quality_control.configs[0].collector_config.parameters.fast_submit_threshold_seconds"},
		{"history size 0", qcPool(&crowdgatev1.QualityControlConfig{
			CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET, Parameters: &crowdgatev1.CollectorParameters{HistorySize: proto.Int32(0)}},
			Rules:           []*crowdgatev1.QualityControlRule{rule(action(overlap, &crowdgatev1.RuleActionParameters{Delta: proto.Int32(1)}), qcCond("k", gt, 1))}}),
			"pool.quality_control.configs[0].collector_config.parameters.history_size"},

		{"pricing type", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.Type = "TIME" }), "pool.dynamic_pricing_config.type"},
		{"pricing without skill", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.SkillId = "" }), "pool.dynamic_pricing_config.skill_id"},
		{"pricing without intervals", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.Intervals = nil }), "pool.dynamic_pricing_config.intervals"},
		{"pricing from -1", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.Intervals[0].From = -1 }), "pool.dynamic_pricing_config.intervals[0].from"},
		{"pricing to 101", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.Intervals[1].To = proto.Int32(101) }), "pool.dynamic_pricing_config.intervals[1].to"},
		{"pricing to below from", pricing(func(d *crowdgatev1.DynamicPricingConfig) {
			d.Intervals[0].From, d.Intervals[0].To = 40, proto.Int32(30)
		}), "pool.dynamic_pricing_config.intervals[0].to"},
		{"pricing overlap", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.Intervals[1].From = 50 }), "pool.dynamic_pricing_config.intervals[1].from"},
		{"pricing reward", pricing(func(d *crowdgatev1.DynamicPricingConfig) { d.Intervals[1].RewardPerAssignment = "0.001" }), "pool.dynamic_pricing_config.intervals[1].reward_per_assignment"},

		{"overlap type", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.Type = "SMART" }), "pool.dynamic_overlap_config.type"},
		{"max overlap 0", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.MaxOverlap = 0 }), "pool.dynamic_overlap_config.max_overlap"},
		{"max overlap 30001", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.MaxOverlap = 30001 }), "pool.dynamic_overlap_config.max_overlap"},
		{"max overlap not above defaults", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.MaxOverlap = 1 }), "pool.dynamic_overlap_config.max_overlap"},
		{"min confidence negative", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.MinConfidence = -0.1 }), "pool.dynamic_overlap_config.min_confidence"},
		{"min confidence above 1", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.MinConfidence = 1.01 }), "pool.dynamic_overlap_config.min_confidence"},
		{"min confidence NaN", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.MinConfidence = math.NaN() }), "pool.dynamic_overlap_config.min_confidence"},
		{"overlap without skill", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.AnswerWeightSkillId = "" }), "pool.dynamic_overlap_config.answer_weight_skill_id"},
		{"overlap without fields", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.Fields = nil }), "pool.dynamic_overlap_config.fields"},
		{"overlap field without name", overlapCfg(func(d *crowdgatev1.DynamicOverlapConfig) { d.Fields[0].Name = "" }), "pool.dynamic_overlap_config.fields[0].name"},

		{"mixer real negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: -1, GoldenTasksCount: 1}), "pool.mixer_config.real_tasks_count"},
		{"mixer golden negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, GoldenTasksCount: -1}), "pool.mixer_config.golden_tasks_count"},
		{"mixer training negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, TrainingTasksCount: -1}), "pool.mixer_config.training_tasks_count"},
		{"mixer empty suite", mixer(&crowdgatev1.MixerConfig{}), "pool.mixer_config.real_tasks_count"},
		{"mixer min real negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, MinRealTasksCount: proto.Int32(-1)}), "pool.mixer_config.min_real_tasks_count"},
		{"mixer min golden negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, MinGoldenTasksCount: proto.Int32(-1)}), "pool.mixer_config.min_golden_tasks_count"},
		{"mixer min training negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, MinTrainingTasksCount: proto.Int32(-1)}), "pool.mixer_config.min_training_tasks_count"},
		{"force last delay negative", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, ForceLastAssignmentDelaySeconds: proto.Int32(-1)}), "pool.mixer_config.force_last_assignment_delay_seconds"},
		{"force last delay over a day", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 1, ForceLastAssignmentDelaySeconds: proto.Int32(86401)}), "pool.mixer_config.force_last_assignment_delay_seconds"},
		{"golden distribution with golden count", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, GoldenTasksCount: 1,
			GoldenTaskDistributionFunction: distribution("POOL", [3]int32{1, 10, 2})}), "pool.mixer_config.golden_tasks_count"},
		{"golden distribution with golden minimum", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, MinGoldenTasksCount: proto.Int32(0),
			GoldenTaskDistributionFunction: distribution("POOL", [3]int32{1, 10, 2})}), "pool.mixer_config.min_golden_tasks_count"},
		{"distribution window 0", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5,
			TrainingTaskDistributionFunction: &crowdgatev1.TaskDistributionFunction{Scope: "POOL", Intervals: []*crowdgatev1.DistributionInterval{{From: 1, To: 2, Frequency: 1}}}}),
			"pool.mixer_config.training_task_distribution_function.window_days"},
		{"distribution not uniform", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5,
			TrainingTaskDistributionFunction: &crowdgatev1.TaskDistributionFunction{Scope: "POOL", Distribution: "NORMAL", WindowDays: 1, Intervals: []*crowdgatev1.DistributionInterval{{From: 1, To: 2, Frequency: 1}}}}),
			"pool.mixer_config.training_task_distribution_function.distribution"},
		{"distribution without intervals", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, TrainingTaskDistributionFunction: distribution("POOL")}),
			"pool.mixer_config.training_task_distribution_function.intervals"},
		{"distribution to below from", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, TrainingTaskDistributionFunction: distribution("POOL", [3]int32{10, 5, 1})}),
			"pool.mixer_config.training_task_distribution_function.intervals[0].to"},
		{"distribution frequency 0", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, TrainingTaskDistributionFunction: distribution("POOL", [3]int32{1, 5, 0})}),
			"pool.mixer_config.training_task_distribution_function.intervals[0].frequency"},
		{"distribution overlapping", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, TrainingTaskDistributionFunction: distribution("POOL", [3]int32{1, 5, 1}, [3]int32{5, 9, 1})}),
			"pool.mixer_config.training_task_distribution_function.intervals[1].from"},
		{"distribution later from 0", mixer(&crowdgatev1.MixerConfig{RealTasksCount: 5, TrainingTaskDistributionFunction: distribution("POOL", [3]int32{0, 0, 1}, [3]int32{0, 9, 1})}),
			"pool.mixer_config.training_task_distribution_function.intervals[1].from"},

		{"filter without node", func(p *crowdgatev1.Pool) { p.Filter = &crowdgatev1.Filter{} }, "pool.filter"},
		{"filter empty and", func(p *crowdgatev1.Pool) { p.Filter = gatewaytest.And() }, "pool.filter.and.filters"},
		{"filter bad category", func(p *crowdgatev1.Pool) {
			p.Filter = gatewaytest.And(gatewaytest.Cond("profile", "country", "EQ", structpb.NewStringValue("RU")), gatewaytest.Cond("karma", "x", "EQ", structpb.NewNumberValue(1)))
		}, "pool.filter.and.filters[1].condition.category"},
		{"filter without key", func(p *crowdgatev1.Pool) {
			p.Filter = gatewaytest.Cond("profile", "", "EQ", structpb.NewNumberValue(1))
		}, "pool.filter.condition.key"},
		{"filter bad operator", func(p *crowdgatev1.Pool) {
			p.Filter = gatewaytest.Cond("profile", "country", "eq", structpb.NewStringValue("RU"))
		}, "pool.filter.condition.operator"},
		{"filter without value", func(p *crowdgatev1.Pool) { p.Filter = gatewaytest.Cond("profile", "country", "EQ", nil) }, "pool.filter.condition.value"},
		{"filter NaN value", func(p *crowdgatev1.Pool) {
			p.Filter = gatewaytest.Cond("skill", "1", "GT", structpb.NewNumberValue(math.NaN()))
		}, "pool.filter.condition.value"},
		{"filter too deep", func(p *crowdgatev1.Pool) { p.Filter = deep }, "pool.filter" + strings.Repeat(".and.filters[0]", 10)},
		{"filter too long", func(p *crowdgatev1.Pool) { p.Filter = gatewaytest.Or(many...) }, "pool.filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gatewaytest.ValidPool(prj.GetProjectId(), now)
			tc.change(p)
			_, err := env.Pools.CreatePool(env.Ctx(), &crowdgatev1.CreatePoolRequest{Pool: p})
			gatewaytest.WantField(t, err, tc.field)
		})
	}
	if posts := env.Requests(http.MethodPost, "/api/v1/pools"); len(posts) != 0 {
		t.Errorf("invalid pools reached Toloka %d times", len(posts))
	}

	// The valid base pool is accepted: the table's errors come from the
	// changes alone.
	env.MustPool(env.Ctx(), gatewaytest.ValidPool(prj.GetProjectId(), now))
	_, err := env.Pools.CreatePool(env.Ctx(), &crowdgatev1.CreatePoolRequest{Pool: gatewaytest.ValidPool("prj_nope", now)})
	gatewaytest.WantCode(t, err, codes.NotFound)
	_, err = env.Pools.CreatePool(gatewaytest.As("globex"), &crowdgatev1.CreatePoolRequest{Pool: gatewaytest.ValidPool(prj.GetProjectId(), now)})
	gatewaytest.WantCode(t, err, codes.NotFound)
}

// TestPoolLifecycle opens a pool (waiting for Toloka's operation), refuses
// to change or archive it while open, closes it, updates it by mask over
// gRPC and REST (a PUT of the whole pool to Toloka), reads it, archives
// it, and refuses to open it again.
func TestPoolLifecycle(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	prj := env.MustProject(env.Ctx(), gatewaytest.FullProject(env.MustCredential(env.Ctx(), key)))
	created := env.MustPool(env.Ctx(), gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	id := created.GetPoolId()
	firstBody := env.Requests(http.MethodPost, "/api/v1/pools")[0].Body

	// Open waits for Toloka's operation: the answer is already OPEN, after
	// the operation was polled until it finished.
	before := env.Now()
	opened, err := env.Pools.OpenPool(env.Ctx(), &crowdgatev1.OpenPoolRequest{PoolId: id})
	if err != nil {
		t.Fatalf("OpenPool: %v", err)
	}
	if opened.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN || opened.GetPool().GetLastStarted() == nil {
		t.Errorf("OpenPool answered %v, want OPEN with last_started", opened.GetPool())
	}
	if polls := env.Requests(http.MethodGet, "/api/v1/operations/"); len(polls) < 2 {
		t.Errorf("the open operation was polled %d times; it takes %s, so it was not waited for", len(polls), gatewaytest.OperationDelay)
	}
	if waited := env.Now().Sub(before); waited < gatewaytest.OperationDelay {
		t.Errorf("OpenPool returned after %s of Toloka time, before the operation's %s", waited, gatewaytest.OperationDelay)
	}

	// An open pool is changed through Toloka's close-for-update: stopped
	// (FOR_UPDATE), saved and opened again; its priority alone changes in
	// place (PATCH). It cannot be archived while open.
	tid := created.GetTolokaPoolId()
	upd, err := env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: id, PublicDescription: "Now with a description"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"public_description"}},
	})
	if err != nil {
		t.Fatalf("UpdatePool of an open pool: %v", err)
	}
	if p := upd.GetPool(); p.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN || p.GetLastCloseReason() != crowdgatev1.CloseReason_CLOSE_REASON_FOR_UPDATE ||
		p.GetPublicDescription() != "Now with a description" {
		t.Errorf("updated open pool = %v, want OPEN again, last closed FOR_UPDATE", p)
	}
	var steps []string
	for _, r := range env.Requests(http.MethodPost, "/api/v1/pools/"+tid+"/") {
		steps = append(steps, r.Method+" "+strings.TrimPrefix(r.Path, "/api/v1/pools/"+tid))
	}
	for _, r := range env.Requests(http.MethodPut, "/api/v1/pools/"+tid) {
		steps = append(steps, r.Method)
	}
	if diff := cmp.Diff([]string{"POST /open", "POST /close-for-update", "POST /open", "PUT"}, steps); diff != "" {
		t.Errorf("Toloka calls of the open update (-want +got):\n%s", diff)
	}
	if puts := env.Requests(http.MethodPut, "/api/v1/pools/"+tid); len(puts) != 1 ||
		gatewaytest.DecodeJSON(t, puts[0].Body).(map[string]any)["public_description"] != "Now with a description" {
		t.Errorf("PUT while closed for update = %+v", puts)
	}
	prio, err := env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: id, Priority: proto.Int32(40)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"priority"}},
	})
	if err != nil || prio.GetPool().GetPriority() != 40 || prio.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
		t.Fatalf("priority of an open pool = %v, %v", prio, err)
	}
	if patches := env.Requests(http.MethodPatch, "/api/v1/pools/"+tid); len(patches) != 1 || string(patches[0].Body) != `{"priority":40}` {
		t.Errorf("PATCH /pools = %+v, want one with the priority", patches)
	}
	if n := len(env.Requests(http.MethodPost, "/api/v1/pools/"+tid+"/close-for-update")); n != 1 {
		t.Errorf("the priority change stopped the pool (%d close-for-update)", n)
	}
	_, err = env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: id, Priority: proto.Int32(101)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"priority"}},
	})
	gatewaytest.WantField(t, err, "pool.priority")
	_, err = env.Pools.ArchivePool(env.Ctx(), &crowdgatev1.ArchivePoolRequest{PoolId: id})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)

	// Listing shows it open; the other status filter shows nothing.
	list, err := env.Pools.ListPools(env.Ctx(), &crowdgatev1.ListPoolsRequest{ProjectId: prj.GetProjectId(), Status: crowdgatev1.PoolStatus_POOL_STATUS_OPEN})
	if err != nil || len(list.GetPools()) != 1 || list.GetPools()[0].GetPoolId() != id {
		t.Fatalf("ListPools OPEN = %v, %v", list, err)
	}
	list, err = env.Pools.ListPools(env.Ctx(), &crowdgatev1.ListPoolsRequest{ProjectId: prj.GetProjectId(), Status: crowdgatev1.PoolStatus_POOL_STATUS_CLOSED})
	if err != nil || len(list.GetPools()) != 0 {
		t.Fatalf("ListPools CLOSED = %v, %v", list, err)
	}

	closed, err := env.Pools.ClosePool(env.Ctx(), &crowdgatev1.ClosePoolRequest{PoolId: id})
	if err != nil {
		t.Fatalf("ClosePool: %v", err)
	}
	if p := closed.GetPool(); p.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED || p.GetLastCloseReason() != crowdgatev1.CloseReason_CLOSE_REASON_MANUAL || p.GetLastStopped() == nil {
		t.Errorf("ClosePool answered %v, want CLOSED, MANUAL", p)
	}

	// Closed, it can be changed; the mask decides what changes.
	upd, err = env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool:       &crowdgatev1.Pool{PoolId: id, RewardPerAssignment: "0.07", PrivateName: "ignored: not in the mask", Priority: proto.Int32(-5)},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"reward_per_assignment", "priority", "status"}},
	})
	if err != nil {
		t.Fatalf("UpdatePool: %v", err)
	}
	if p := upd.GetPool(); p.GetRewardPerAssignment() != "0.07" || p.GetPrivateName() != "Signs, batch 1" || p.GetPriority() != -5 {
		t.Errorf("updated pool = %v", p)
	}
	puts := env.Requests(http.MethodPut, "/api/v1/pools/"+created.GetTolokaPoolId())
	if len(puts) != 2 {
		t.Fatalf("%d PUT /pools/%s, want 2", len(puts), created.GetTolokaPoolId())
	}
	want := gatewaytest.DecodeJSON(t, firstBody).(map[string]any)
	want["reward_per_assignment"] = gatewaytest.DecodeJSON(t, []byte("0.07"))
	want["priority"] = gatewaytest.DecodeJSON(t, []byte("-5"))
	want["public_description"] = "Now with a description"
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, puts[1].Body)); diff != "" {
		t.Errorf("PUT body (-want +got):\n%s", diff)
	}

	// REST PATCH: the body's fields are the mask.
	code, body := env.REST(http.MethodPatch, "/v1/pools/"+id, `{"public_description": "Now with a description", "mixer_config": {"real_tasks_count": 4}}`)
	if code != http.StatusOK {
		t.Fatalf("REST PATCH = %d %v", code, body)
	}
	puts = env.Requests(http.MethodPut, "/api/v1/pools/"+created.GetTolokaPoolId())
	want["public_description"] = "Now with a description"
	want["mixer_config"] = gatewaytest.DecodeJSON(t, []byte(`{"real_tasks_count": 4, "golden_tasks_count": 0, "training_tasks_count": 0}`))
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, puts[len(puts)-1].Body)); diff != "" {
		t.Errorf("PUT body after REST PATCH (-want +got):\n%s", diff)
	}
	// An invalid update is refused before Toloka.
	_, err = env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: id, AutoAcceptPeriodDay: proto.Int32(30)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"auto_accept_period_day"}},
	})
	gatewaytest.WantField(t, err, "pool.auto_accept_period_day")
	_, err = env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: id}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"no_such_field"}},
	})
	gatewaytest.WantField(t, err, "update_mask")
	_, err = env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: id, ProjectId: "prj_other"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"project_id"}},
	})
	gatewaytest.WantField(t, err, "pool.project_id")
	if n := len(env.Requests(http.MethodPut, "/api/v1/pools/")); n != 3 {
		t.Errorf("%d PUTs reached Toloka, want the 3 valid updates", n)
	}

	// Get refreshes from Toloka; the landing finds the pool by Toloka id.
	got, err := env.Pools.GetPool(env.Ctx(), &crowdgatev1.GetPoolRequest{PoolId: id})
	if err != nil || got.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED || got.GetPool().GetRewardPerAssignment() != "0.07" {
		t.Fatalf("GetPool = %v, %v", got, err)
	}
	_, err = env.Pools.GetPool(gatewaytest.As("globex"), &crowdgatev1.GetPoolRequest{PoolId: id})
	gatewaytest.WantCode(t, err, codes.NotFound)

	archived, err := env.Pools.ArchivePool(env.Ctx(), &crowdgatev1.ArchivePoolRequest{PoolId: id})
	if err != nil || archived.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED {
		t.Fatalf("ArchivePool = %v, %v", archived, err)
	}
	// Toloka refuses to open an archived pool: FAILED_PRECONDITION.
	_, err = env.Pools.OpenPool(env.Ctx(), &crowdgatev1.OpenPoolRequest{PoolId: id})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	// REST open and close of an unknown pool: 404.
	if code, body := env.REST(http.MethodPost, "/v1/pools/pool_nope/open", `{}`); code != http.StatusNotFound {
		t.Errorf("REST open of an unknown pool = %d %v", code, body)
	}
}

// TestOpenPoolOverREST opens, closes, lists and archives a pool over REST.
func TestOpenPoolOverREST(t *testing.T) {
	env := start(t)
	key := env.NewAPIKey("acme")
	t.Cleanup(func() { env.AssertNotLeaked(key) })
	prj := env.MustProject(env.Ctx(), gatewaytest.MinimalProject(env.MustCredential(env.Ctx(), key)))
	p := env.MustPool(env.Ctx(), gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	code, body := env.REST(http.MethodPost, "/v1/pools/"+p.GetPoolId()+"/open", `{}`)
	if code != http.StatusOK || body["pool"].(map[string]any)["status"] != "POOL_STATUS_OPEN" {
		t.Fatalf("REST open = %d %v", code, body)
	}
	code, body = env.REST(http.MethodPost, "/v1/pools/"+p.GetPoolId()+"/close", `{}`)
	if code != http.StatusOK || body["pool"].(map[string]any)["status"] != "POOL_STATUS_CLOSED" {
		t.Fatalf("REST close = %d %v", code, body)
	}
	code, body = env.REST(http.MethodGet, "/v1/projects/"+prj.GetProjectId()+"/pools", "")
	if code != http.StatusOK || len(body["pools"].([]any)) != 1 {
		t.Fatalf("REST list pools = %d %v", code, body)
	}
	code, body = env.REST(http.MethodPost, "/v1/pools/"+p.GetPoolId()+"/archive", `{}`)
	if code != http.StatusOK || body["pool"].(map[string]any)["status"] != "POOL_STATUS_ARCHIVED" {
		t.Fatalf("REST archive = %d %v", code, body)
	}
}

// Seed 003: issue_task_suites_in_creation_order "is available when the
// project has assignments_issuing_type AUTOMATED". Every Crowdgate project
// is EXTERNAL, so asking for it is refused, naming it, rather than sent to
// Toloka to do nothing (or be refused there); false, the default, is kept.
func TestIssuingInCreationOrderIsRefusedForAnExternalProject(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	p := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
	p.AssignmentsIssuingConfig = &crowdgatev1.AssignmentsIssuingConfig{IssueTaskSuitesInCreationOrder: true}
	_, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: p})
	gatewaytest.WantField(t, err, "pool.assignments_issuing_config.issue_task_suites_in_creation_order")
	if n := len(env.Requests(http.MethodPost, "/api/v1/pools")); n != 0 {
		t.Errorf("%d POST /pools, want none", n)
	}
}

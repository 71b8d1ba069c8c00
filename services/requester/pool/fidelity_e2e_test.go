package pool_test

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

func fidelityProject(t *testing.T, env *gatewaytest.Env) *crowdgatev1.Project {
	t.Helper()
	key := env.NewAPIKey("acme")
	return env.MustProject(env.Ctx(), gatewaytest.MinimalProject(env.MustCredential(env.Ctx(), key)))
}

// toloka-kit and toloka-api-facts.md: ASSIGNMENT_SUBMIT_TIME takes
// {fast_submit_threshold_seconds, history_size?}: history_size is optional.
// A rule set without it is valid and must be accepted.
func TestASubmitTimeRuleWithoutHistorySizeIsAccepted(t *testing.T) {
	env := start(t)
	prj := fidelityProject(t, env)
	p := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
	p.QualityControl = &crowdgatev1.PoolQualityControl{Configs: []*crowdgatev1.QualityControlConfig{{
		CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME,
			Parameters: &crowdgatev1.CollectorParameters{FastSubmitThresholdSeconds: proto.Int32(20)}},
		Rules: []*crowdgatev1.QualityControlRule{rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2,
			&crowdgatev1.RuleActionParameters{Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT,
				DurationUnit: crowdgatev1.DurationUnit_DURATION_UNIT_DAYS, Duration: proto.Int32(1)}),
			qcCond("fast_submitted_count", gte, 3))},
	}}}
	if _, err := env.Pools.CreatePool(env.Ctx(), &crowdgatev1.CreatePoolRequest{Pool: p}); err != nil {
		t.Fatalf("CreatePool with ASSIGNMENT_SUBMIT_TIME {fast_submit_threshold_seconds: 20} (history_size optional per toloka-kit) = %v, want OK", err)
	}
}

// Seed 003: dynamic_overlap_config.max_overlap "Must be higher than the
// values in defaults" (both default overlaps). A max_overlap below
// defaults.default_overlap_for_new_tasks must be refused naming the field.
func TestMaxOverlapMustExceedTheDefaultOverlapForNewTasks(t *testing.T) {
	env := start(t)
	prj := fidelityProject(t, env)
	p := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
	p.Defaults = &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1, DefaultOverlapForNewTasks: proto.Int32(5)}
	p.DynamicOverlapConfig = &crowdgatev1.DynamicOverlapConfig{Type: "BASIC", MaxOverlap: 3, MinConfidence: 0.9, AnswerWeightSkillId: "1289",
		Fields: []*crowdgatev1.DynamicOverlapField{{Name: "result"}}}
	_, err := env.Pools.CreatePool(env.Ctx(), &crowdgatev1.CreatePoolRequest{Pool: p})
	if err == nil {
		t.Fatalf("CreatePool with max_overlap 3 below default_overlap_for_new_tasks 5 was accepted (and sent to Toloka); want INVALID_ARGUMENT on pool.dynamic_overlap_config.max_overlap")
	}
	gatewaytest.WantField(t, err, "pool.dynamic_overlap_config.max_overlap")
}

// Seed 003: dynamic_pricing_config.intervals[].to is "Upper bound of the
// interval ... By default 100." An interval sent over REST without "to"
// must not reach Toloka as the interval [from, 0].
func TestAPricingIntervalWithoutToEndsAt100(t *testing.T) {
	env := start(t)
	prj := fidelityProject(t, env)
	code, body := env.REST(http.MethodPost, "/v1/pools", `{"project_id": "`+prj.GetProjectId()+`", "private_name": "x",
		"will_expire": "`+env.Now().Add(240*3600e9).UTC().Format("2006-01-02T15:04:05Z")+`", "reward_per_assignment": "0.02",
		"assignment_max_duration_seconds": 600, "defaults": {"default_overlap_for_new_task_suites": 1},
		"dynamic_pricing_config": {"type": "SKILL", "skill_id": "1289", "intervals": [{"from": 0, "reward_per_assignment": "0.03"}]}}`)
	if code != http.StatusOK {
		t.Fatalf("REST create = %d %v", code, body)
	}
	posts := env.Requests(http.MethodPost, "/api/v1/pools")
	sent := string(posts[len(posts)-1].Body)
	if strings.Contains(sent, `"to":0`) {
		t.Errorf("an interval without \"to\" (Toloka default 100) was sent as [0, 0]: %s", sent)
	}
}

// A mask path naming no field must be refused (update_mask), whether or not
// the stored pool has the parent message.
func TestAMaskPathUnderAnUnsetMessageMustNameAField(t *testing.T) {
	env := start(t)
	prj := fidelityProject(t, env)
	p := env.MustPool(env.Ctx(), gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	_, err := env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: p.GetPoolId()}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"mixer_config.no_such_field"}},
	})
	if err == nil {
		t.Fatalf("UpdatePool with mask mixer_config.no_such_field = OK (a PUT went to Toloka); want INVALID_ARGUMENT on update_mask")
	}
	gatewaytest.WantField(t, err, "update_mask")
}

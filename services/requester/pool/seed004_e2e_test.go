package pool_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestSeed004ControlTasksEndToEnd is seed 004's own example through
// Crowdgate and the emulator: a pool with "more than 7 control answers and
// fewer than 75% right: ban from the project for 10 days" and "skill from
// the golden rate". A Toloker whose submits carry poor control results
// (one control task a submit, half right) is banned by the emulator after
// the 8th; Crowdgate's next Submit answer says restriction_match and ends
// the session; the skill holds the rate (50); and the emulator will not
// start an assignment for the Toloker in a pool filtered on that skill, as
// Toloka would not show them the task. A training pool gates a third pool
// through training_requirement.
func TestSeed004ControlTasksEndToEnd(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	skills := crowdgatev1.NewSkillServiceClient(env.Conn)
	cred := env.MustCredential(ctx, env.NewAPIKey("acme"))
	sk, err := skills.CreateSkill(ctx, &crowdgatev1.CreateSkillRequest{Skill: &crowdgatev1.Skill{CredentialId: cred, Name: "Control tasks"}})
	if err != nil {
		t.Fatal(err)
	}
	skillID := sk.GetSkill().GetSkillId()

	open := func(p *crowdgatev1.Pool) *crowdgatev1.Pool {
		t.Helper()
		created := env.MustPool(ctx, p)
		resp, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: created.GetPoolId()})
		if err != nil {
			t.Fatalf("OpenPool: %v", err)
		}
		return resp.GetPool()
	}
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(cred))
	const (
		gt = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_GT
		lt = crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_LT
	)
	golden := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
	golden.QualityControl = &crowdgatev1.PoolQualityControl{Configs: []*crowdgatev1.QualityControlConfig{{
		CollectorConfig: &crowdgatev1.CollectorConfig{Type: crowdgatev1.CollectorType_COLLECTOR_TYPE_GOLDEN_SET,
			Parameters: &crowdgatev1.CollectorParameters{HistorySize: proto.Int32(10)}},
		Rules: []*crowdgatev1.QualityControlRule{
			rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD,
				&crowdgatev1.RuleActionParameters{SkillId: skillID, FromField: "golden_set_correct_answers_rate"}),
				qcCond("golden_set_answers_count", gt, 7)),
			rule(action(crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2, &crowdgatev1.RuleActionParameters{
				Scope: crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_PROJECT, DurationUnit: crowdgatev1.DurationUnit_DURATION_UNIT_DAYS,
				Duration: proto.Int32(10), PrivateComment: "Control tasks were not completed"}),
				qcCond("golden_set_answers_count", gt, 7), qcCond("golden_set_correct_answers_rate", lt, 75)),
		},
	}}}
	gp := open(golden)

	// The Toloker is modelled: the emulator gates them as Toloka would.
	const user = "toloker-1"
	env.Sim.SetUser(user, tolokasim.UserState{Profile: tolokasim.Profile{"country": "RU", "languages": []any{"EN"}}})
	sess := env.LandSession(ctx, env.StartAssignment(gp, user))
	for i := 1; i <= 9; i++ {
		resp, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{
			SessionId: sess.GetSessionId(), RetryId: fmt.Sprintf("task-%d", i), Reward: "0.05", Quality: "0.5",
			GoldenTasksCount: proto.Int32(1), RealTasksCount: proto.Int32(3),
		})
		if err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		restricted := resp.GetSubmission().GetFlags().GetRestrictionMatch()
		if want := i == 9; restricted != want || resp.GetSessionEnded() != want {
			t.Fatalf("submit %d: restriction_match %v, session ended %v (%s); want %v", i, restricted, resp.GetSessionEnded(), resp.GetSessionEndReason(), want)
		}
	}
	// The session is over: another submit in it is refused.
	if _, err := env.Submissions.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sess.GetSessionId(), RetryId: "task-10", Reward: "0.05"}); err == nil {
		t.Errorf("a submit after the session ended was accepted")
	}
	// The skill holds the golden rate.
	vals, err := skills.ListUserSkills(ctx, &crowdgatev1.ListUserSkillsRequest{CredentialId: cred, UserId: user, SkillId: skillID})
	if err != nil || len(vals.GetUserSkills()) != 1 || vals.GetUserSkills()[0].GetValue() != "50" {
		t.Fatalf("skill values = %v, %v; want 50", vals, err)
	}

	// In another project, a pool filtered on the skill is not shown to them.
	other := env.MustProject(ctx, gatewaytest.MinimalProject(cred))
	filtered := gatewaytest.ValidPool(other.GetProjectId(), env.Now())
	filtered.Filter = gatewaytest.Cond("skill", skillID, "GTE", structpb.NewNumberValue(75))
	fp := open(filtered)
	if _, err := env.Sim.CreateAssignment(fp.GetTolokaPoolId(), user); err == nil {
		t.Errorf("the emulator started an assignment for a Toloker below the pool's skill filter")
	}
	if _, err := skills.SetUserSkill(ctx, &crowdgatev1.SetUserSkillRequest{CredentialId: cred, SkillId: skillID, UserId: "toloker-2", Value: "90", Reason: "trusted"}); err != nil {
		t.Fatal(err)
	}
	env.Sim.SetUser("toloker-2", tolokasim.UserState{Profile: tolokasim.Profile{"country": "RU"}})
	env.StartAssignment(fp, "toloker-2")

	// A training pool gates a real pool through training_requirement.
	tr := open(trainingPool(other.GetProjectId()))
	gated := gatewaytest.ValidPool(other.GetProjectId(), env.Now())
	gated.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPoolId: tr.GetPoolId(), TrainingPassingSkillValue: 80}}
	gp2 := open(gated)
	env.Sim.SetUser("trainee", tolokasim.UserState{Profile: tolokasim.Profile{}, Trainings: map[string]float64{tr.GetTolokaPoolId(): 70}})
	if _, err := env.Sim.CreateAssignment(gp2.GetTolokaPoolId(), "trainee"); err == nil {
		t.Errorf("a Toloker below the training's passing value started an assignment")
	}
	env.Sim.SetUser("trainee", tolokasim.UserState{Profile: tolokasim.Profile{}, Trainings: map[string]float64{tr.GetTolokaPoolId(): 85}})
	env.LandSession(ctx, env.StartAssignment(gp2, "trainee"))
}

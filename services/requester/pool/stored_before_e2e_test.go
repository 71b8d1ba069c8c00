package pool_test

import (
	"log/slog"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
)

// TestATrainingStoredWithAPublicDescriptionCanStillBeUpdated: the
// previous version accepted and stored a TRAINING pool's
// public_description. After the upgrade an update of another field (its
// private name) must not be refused for a field the caller did not send.
func TestATrainingStoredWithAPublicDescriptionCanStillBeUpdated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	got := env.MustPool(ctx, trainingPool(prj.GetProjectId()))
	// As the previous version stored it.
	cat := catalog.New(env.Redis.Client, env.Redis.Prefix, nil, nil, nil, slog.New(slog.DiscardHandler))
	if _, err := cat.ChangePool(ctx, got.GetTenantId(), got.GetPoolId(), func(cur *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) {
		cur.PublicDescription = "Practise drawing boxes"
		return cur, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if p, err := cat.Pool(ctx, got.GetTenantId(), got.GetPoolId()); err != nil || p.GetPublicDescription() == "" {
		t.Fatalf("the stored pool was not changed: %v %v", p, err)
	}
	_, err := env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{
		Pool:       &crowdgatev1.Pool{PoolId: got.GetPoolId(), PrivateName: "Training v2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"private_name"}},
	})
	if err != nil {
		t.Errorf("UpdatePool(private_name) of a training stored by the previous version = %v, want it updated", err)
	}
}

// TestAPoolStoredIssuingInCreationOrderCanStillBeUpdated: the same for
// a regular pool the previous version stored with
// issue_task_suites_in_creation_order true.
func TestAPoolStoredIssuingInCreationOrderCanStillBeUpdated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	got := env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	cat := catalog.New(env.Redis.Client, env.Redis.Prefix, nil, nil, nil, slog.New(slog.DiscardHandler))
	if _, err := cat.ChangePool(ctx, got.GetTenantId(), got.GetPoolId(), func(cur *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) {
		cur.AssignmentsIssuingConfig = &crowdgatev1.AssignmentsIssuingConfig{IssueTaskSuitesInCreationOrder: true}
		return cur, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{
		Pool:       &crowdgatev1.Pool{PoolId: got.GetPoolId(), PrivateName: "Pool v2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"private_name"}},
	})
	if err != nil {
		t.Errorf("UpdatePool(private_name) of a pool stored by the previous version = %v, want it updated", err)
	}
}

// TestAPoolStoredWithAFilterNowRefusedCanStillBeUpdated: the same for
// a pool stored with a filter condition the per-key rules now refuse (languages EQ).
func TestAPoolStoredWithAFilterNowRefusedCanStillBeUpdated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	got := env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	cat := catalog.New(env.Redis.Client, env.Redis.Prefix, nil, nil, nil, slog.New(slog.DiscardHandler))
	if _, err := cat.ChangePool(ctx, got.GetTenantId(), got.GetPoolId(), func(cur *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) {
		cur.Filter = &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{
			Category: "profile", Key: "languages", Operator: "EQ", Value: structpb.NewStringValue("EN")}}}
		return cur, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{
		Pool:       &crowdgatev1.Pool{PoolId: got.GetPoolId(), PrivateName: "Pool v2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"private_name"}},
	})
	if err != nil {
		t.Errorf("UpdatePool(private_name) of a pool stored by the previous version = %v, want it updated", err)
	}
}

// TestAProjectStoredWithARequirementNowRefusedStillTakesPools: a project
// the previous version stored with a Toloker-requirements filter the
// per-key rules now refuse (Toloka took it then) still takes new pools and
// updates of its other fields; a changed filter meets the rules.
func TestAProjectStoredWithARequirementNowRefusedStillTakesPools(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	cat := catalog.New(env.Redis.Client, env.Redis.Prefix, nil, nil, nil, slog.New(slog.DiscardHandler))
	old := &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{
		Category: "profile", Key: "languages", Operator: "EQ", Value: structpb.NewStringValue("EN")}}}
	stored, err := cat.Project(ctx, prj.GetTenantId(), prj.GetProjectId())
	if err != nil {
		t.Fatal(err)
	}
	stored.TolokerRequirements = &crowdgatev1.TolokerRequirements{Filter: old}
	if err := cat.PutProject(ctx, stored); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: gatewaytest.ValidPool(prj.GetProjectId(), env.Now())}); err != nil {
		t.Errorf("CreatePool in a project stored by the previous version = %v, want it created", err)
	}
	if _, err := env.Projects.UpdateProject(ctx, &crowdgatev1.UpdateProjectRequest{
		Project:    &crowdgatev1.Project{ProjectId: prj.GetProjectId(), PrivateComment: "v2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"private_comment"}},
	}); err != nil {
		t.Errorf("UpdateProject(private_comment) of a project stored by the previous version = %v, want it updated", err)
	}
	_, err = env.Projects.UpdateProject(ctx, &crowdgatev1.UpdateProjectRequest{
		Project: &crowdgatev1.Project{ProjectId: prj.GetProjectId(), TolokerRequirements: &crowdgatev1.TolokerRequirements{Filter: &crowdgatev1.Filter{
			Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{Category: "profile", Key: "languages", Operator: "EQ", Value: structpb.NewStringValue("DE")}}}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"toloker_requirements"}},
	})
	gatewaytest.WantField(t, err, "project.toloker_requirements.filter.condition.operator")
}

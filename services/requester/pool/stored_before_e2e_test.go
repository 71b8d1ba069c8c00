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

// Values the previous version stored and Toloka took stay as they are
// while an update leaves them unchanged, though this version's rules
// refuse them when given anew: an update never fails on a field its caller
// did not send (found by the review of the session's diff).

// languagesEQ is a filter condition the filter keys' rules refuse
// (languages takes IN and NOT_IN).
func languagesEQ(lang string) *crowdgatev1.Filter {
	return gatewaytest.Cond("profile", "languages", "EQ", structpb.NewStringValue(lang))
}

// catalogOf is the catalog the gateway of env stores in, to write a value
// as the previous version stored it.
func catalogOf(env *gatewaytest.Env) *catalog.Catalog {
	return catalog.New(env.Redis.Client, env.Redis.Prefix, nil, nil, nil, slog.New(slog.DiscardHandler))
}

// storedBefore creates p and changes it in the catalog as the previous
// version would have stored it.
func storedBefore(t *testing.T, env *gatewaytest.Env, p *crowdgatev1.Pool, change func(*crowdgatev1.Pool)) *crowdgatev1.Pool {
	t.Helper()
	ctx := env.Ctx()
	got := env.MustPool(ctx, p)
	stored, err := catalogOf(env).ChangePool(ctx, got.GetTenantId(), got.GetPoolId(), func(cur *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) {
		change(cur)
		return cur, true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// renamePool updates only p's private name.
func renamePool(env *gatewaytest.Env, p *crowdgatev1.Pool) error {
	_, err := env.Pools.UpdatePool(env.Ctx(), &crowdgatev1.UpdatePoolRequest{
		Pool:       &crowdgatev1.Pool{PoolId: p.GetPoolId(), PrivateName: p.GetPrivateName() + " v2"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"private_name"}},
	})
	return err
}

func TestATrainingStoredWithAPublicDescriptionCanStillBeUpdated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	p := storedBefore(t, env, trainingPool(prj.GetProjectId()), func(cur *crowdgatev1.Pool) { cur.PublicDescription = "Practise drawing boxes" })
	if p.GetPublicDescription() == "" {
		t.Fatalf("the stored pool was not changed: %v", p)
	}
	if err := renamePool(env, p); err != nil {
		t.Errorf("UpdatePool(private_name) of a training stored by the previous version = %v, want it updated", err)
	}
}

func TestAPoolStoredIssuingInCreationOrderCanStillBeUpdated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	p := storedBefore(t, env, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()), func(cur *crowdgatev1.Pool) {
		cur.AssignmentsIssuingConfig = &crowdgatev1.AssignmentsIssuingConfig{IssueTaskSuitesInCreationOrder: true}
	})
	if err := renamePool(env, p); err != nil {
		t.Errorf("UpdatePool(private_name) of a pool stored by the previous version = %v, want it updated", err)
	}
}

func TestAPoolStoredWithAFilterNowRefusedCanStillBeUpdated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	p := storedBefore(t, env, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()), func(cur *crowdgatev1.Pool) { cur.Filter = languagesEQ("EN") })
	if err := renamePool(env, p); err != nil {
		t.Errorf("UpdatePool(private_name) of a pool stored by the previous version = %v, want it updated", err)
	}
}

// A project stored with a requirements filter the rules now refuse still
// takes new pools and updates of its other fields; a changed filter meets
// the rules.
func TestAProjectStoredWithARequirementNowRefusedStillTakesPools(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	cat := catalogOf(env)
	stored, err := cat.Project(ctx, prj.GetTenantId(), prj.GetProjectId())
	if err != nil {
		t.Fatal(err)
	}
	stored.TolokerRequirements = &crowdgatev1.TolokerRequirements{Filter: languagesEQ("EN")}
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
		Project:    &crowdgatev1.Project{ProjectId: prj.GetProjectId(), TolokerRequirements: &crowdgatev1.TolokerRequirements{Filter: languagesEQ("DE")}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"toloker_requirements"}},
	})
	gatewaytest.WantField(t, err, "project.toloker_requirements.filter.condition.operator")
}

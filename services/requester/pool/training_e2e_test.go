package pool_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
)

// trainingPool is a valid TRAINING pool of projectID.
func trainingPool(projectID string) *crowdgatev1.Pool {
	return &crowdgatev1.Pool{
		ProjectId: projectID, PrivateName: "Training", Type: crowdgatev1.PoolType_POOL_TYPE_TRAINING,
		RewardPerAssignment: "0", AssignmentMaxDurationSeconds: 300,
		Training: &crowdgatev1.TrainingSettings{
			TrainingTasksInTaskSuiteCount: 5, TaskSuitesRequiredToPass: proto.Int32(2), RetryTrainingAfterDays: proto.Int32(3),
		},
	}
}

// TestTrainingPoolIsATolokaTrainingThatGatesARealPool creates a TRAINING
// pool (Toloka's POST /trainings with every training field, no reward),
// opens, closes and edits it through /trainings, and names it by its
// Crowdgate id in a real pool's training_requirement, which Toloka gets as
// the training's Toloka id.
func TestTrainingPoolIsATolokaTrainingThatGatesARealPool(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	tr := env.MustPool(ctx, trainingPool(prj.GetProjectId()))
	if tr.GetType() != crowdgatev1.PoolType_POOL_TYPE_TRAINING || tr.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED || tr.GetTolokaPoolId() == "" {
		t.Fatalf("training pool = %v", tr)
	}
	posts := env.Requests(http.MethodPost, "/api/v1/trainings")
	if len(posts) != 1 {
		t.Fatalf("%d POST /trainings, want 1", len(posts))
	}
	want := gatewaytest.DecodeJSON(t, []byte(`{"project_id": "`+prj.GetTolokaProjectId()+`", "private_name": "Training",
		"may_contain_adult_content": false, "inherited_instructions": true, "assignment_max_duration_seconds": 300,
		"training_tasks_in_task_suite_count": 5, "task_suites_required_to_pass": 2, "retry_training_after_days": 3}`))
	if diff := cmp.Diff(want, gatewaytest.DecodeJSON(t, posts[0].Body)); diff != "" {
		t.Errorf("training sent to Toloka (-want +got):\n%s", diff)
	}
	if n := len(env.Requests(http.MethodPost, "/api/v1/pools")); n != 0 {
		t.Errorf("a training pool reached POST /pools %d times", n)
	}
	opened, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: tr.GetPoolId()})
	if err != nil || opened.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
		t.Fatalf("OpenPool(training) = %v, %v", opened, err)
	}
	if n := len(env.Requests(http.MethodPost, "/api/v1/trainings/"+tr.GetTolokaPoolId()+"/open")); n != 1 {
		t.Errorf("%d POST /trainings/{id}/open, want 1", n)
	}
	// Editing the open training stops it for update, as a pool.
	upd, err := env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{Pool: &crowdgatev1.Pool{PoolId: tr.GetPoolId(),
		Training: &crowdgatev1.TrainingSettings{TrainingTasksInTaskSuiteCount: 7}}})
	if err == nil {
		t.Fatalf("an update without the pool's other fields should be refused, got %v", upd)
	}
	full := trainingPool(prj.GetProjectId())
	full.PoolId, full.Training.TrainingTasksInTaskSuiteCount = tr.GetPoolId(), 7
	upd, err = env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{Pool: full})
	if err != nil || upd.GetPool().GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN || upd.GetPool().GetTraining().GetTrainingTasksInTaskSuiteCount() != 7 {
		t.Fatalf("UpdatePool(open training) = %v, %v", upd, err)
	}
	if n := len(env.Requests(http.MethodPost, "/api/v1/trainings/"+tr.GetTolokaPoolId()+"/close-for-update")); n != 1 {
		t.Errorf("%d close-for-update of the training, want 1", n)
	}
	if puts := env.Requests(http.MethodPut, "/api/v1/trainings/"+tr.GetTolokaPoolId()); len(puts) != 1 ||
		gatewaytest.DecodeJSON(t, puts[0].Body).(map[string]any)["training_tasks_in_task_suite_count"] == nil {
		t.Errorf("PUT /trainings = %+v", puts)
	}

	// A real pool requires it by Crowdgate id; Toloka gets its own id.
	real := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
	real.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{
		TrainingPoolId: tr.GetPoolId(), TrainingPassingSkillValue: 80}}
	rp := env.MustPool(ctx, real)
	if rp.GetQualityControl().GetTrainingRequirement().GetTrainingPoolId() != tr.GetPoolId() {
		t.Errorf("stored requirement %v, want the Crowdgate id kept", rp.GetQualityControl())
	}
	sent := gatewaytest.DecodeJSON(t, env.Requests(http.MethodPost, "/api/v1/pools")[0].Body).(map[string]any)
	if diff := cmp.Diff(map[string]any{"training_requirement": map[string]any{"training_pool_id": tr.GetTolokaPoolId(), "training_passing_skill_value": gatewaytest.DecodeJSON(t, []byte("80"))}},
		sent["quality_control"]); diff != "" {
		t.Errorf("quality_control sent (-want +got):\n%s", diff)
	}
	// A regular pool is no training.
	other := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
	other.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPoolId: rp.GetPoolId(), TrainingPassingSkillValue: 80}}
	_, err = env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: other})
	gatewaytest.WantField(t, err, "pool.quality_control.training_requirement.training_pool_id")
}

// TestTrainingPoolFieldsAreValidated names each bad field of a TRAINING
// pool before Toloka.
func TestTrainingPoolFieldsAreValidated(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	for _, tc := range []struct {
		name   string
		change func(p *crowdgatev1.Pool)
		field  string
	}{
		{"paid", func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "0.01" }, "pool.reward_per_assignment"},
		{"no training block", func(p *crowdgatev1.Pool) { p.Training = nil }, "pool.training"},
		{"too many tasks", func(p *crowdgatev1.Pool) { p.Training.TrainingTasksInTaskSuiteCount = 501 }, "pool.training.training_tasks_in_task_suite_count"},
		{"too many suites", func(p *crowdgatev1.Pool) { p.Training.TaskSuitesRequiredToPass = proto.Int32(501) }, "pool.training.task_suites_required_to_pass"},
		{"retry 0 days", func(p *crowdgatev1.Pool) { p.Training.RetryTrainingAfterDays = proto.Int32(0) }, "pool.training.retry_training_after_days"},
		{"own instructions missing", func(p *crowdgatev1.Pool) { p.Training.InheritedInstructions = proto.Bool(false) }, "pool.training.public_instructions"},
		{"expiry", func(p *crowdgatev1.Pool) { p.WillExpire = gatewaytest.ValidPool("", env.Now()).WillExpire }, "pool.will_expire"},
		{"filter", func(p *crowdgatev1.Pool) { p.Filter = gatewaytest.Cond("profile", "country", "EQ", nil) }, "pool.filter"},
		{"training on a regular pool", func(p *crowdgatev1.Pool) { p.Type = crowdgatev1.PoolType_POOL_TYPE_REGULAR }, "pool.training"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := trainingPool(prj.GetProjectId())
			tc.change(p)
			_, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: p})
			gatewaytest.WantField(t, err, tc.field)
		})
	}
	if n := len(env.Requests(http.MethodPost, "/api/v1/trainings")); n != 0 {
		t.Errorf("%d invalid trainings reached Toloka", n)
	}
}

// TestSpeedQualityBalanceIsSentAndChecked sends each balance as Toloka's
// speed_quality_balance and refuses the values Toloka does not take.
func TestSpeedQualityBalanceIsSentAndChecked(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	const (
		top  = crowdgatev1.SpeedQualityBalanceType_SPEED_QUALITY_BALANCE_TYPE_TOP_PERCENTAGE_BY_QUALITY
		best = crowdgatev1.SpeedQualityBalanceType_SPEED_QUALITY_BALANCE_TYPE_BEST_CONCURRENT_USERS_BY_QUALITY
	)
	for _, tc := range []struct {
		name  string
		sq    *crowdgatev1.SpeedQualityBalance
		field string
		want  string
	}{
		{"top percent", &crowdgatev1.SpeedQualityBalance{Type: top, Percent: 80}, "", `{"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": 80}`},
		{"best concurrent", &crowdgatev1.SpeedQualityBalance{Type: best, Count: 25}, "", `{"type": "BEST_CONCURRENT_USERS_BY_QUALITY", "count": 25}`},
		{"percent not a step of 10", &crowdgatev1.SpeedQualityBalance{Type: top, Percent: 75}, "pool.speed_quality_balance.percent", ""},
		{"percent below 10", &crowdgatev1.SpeedQualityBalance{Type: top}, "pool.speed_quality_balance.percent", ""},
		{"count 0", &crowdgatev1.SpeedQualityBalance{Type: best}, "pool.speed_quality_balance.count", ""},
		{"count with top", &crowdgatev1.SpeedQualityBalance{Type: top, Percent: 10, Count: 3}, "pool.speed_quality_balance.count", ""},
		{"no type", &crowdgatev1.SpeedQualityBalance{Percent: 10}, "pool.speed_quality_balance.type", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
			p.SpeedQualityBalance = tc.sq
			before := len(env.Requests(http.MethodPost, "/api/v1/pools"))
			created, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: p})
			if tc.field != "" {
				gatewaytest.WantField(t, err, tc.field)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			posts := env.Requests(http.MethodPost, "/api/v1/pools")[before:]
			sent := gatewaytest.DecodeJSON(t, posts[0].Body).(map[string]any)
			if diff := cmp.Diff(gatewaytest.DecodeJSON(t, []byte(tc.want)), sent["speed_quality_balance"]); diff != "" {
				t.Errorf("speed_quality_balance sent (-want +got):\n%s", diff)
			}
			if !proto.Equal(created.GetPool().GetSpeedQualityBalance(), tc.sq) {
				t.Errorf("stored %v", created.GetPool().GetSpeedQualityBalance())
			}
		})
	}
}

// A training has no public description at Toloka (toloka-kit's Training
// has no such field): one given is refused, naming it, rather than stored,
// returned and never sent.
func TestATrainingsPublicDescriptionIsRefused(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	p := trainingPool(prj.GetProjectId())
	p.PublicDescription = "Practise drawing boxes before the paid pool"
	_, err := env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: p})
	gatewaytest.WantField(t, err, "pool.public_description")
	if n := len(env.Requests(http.MethodPost, "/api/v1/trainings")); n != 0 {
		t.Errorf("%d POST /trainings, want none", n)
	}
}

// A training's mix_tasks_in_creation_order and shuffle_tasks_in_task_suite
// (toloka-api-facts, Trainings) reach Toloka as set, and are left out
// (Toloka's defaults) when not.
func TestATrainingsTaskOrderSettingsReachToloka(t *testing.T) {
	env := start(t)
	ctx := env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, env.NewAPIKey("acme"))))
	p := trainingPool(prj.GetProjectId())
	p.Training.ShuffleTasksInTaskSuite = proto.Bool(false)
	p.Training.MixTasksInCreationOrder = proto.Bool(true)
	got := env.MustPool(ctx, p)
	if !got.GetTraining().GetMixTasksInCreationOrder() || got.GetTraining().ShuffleTasksInTaskSuite == nil || got.GetTraining().GetShuffleTasksInTaskSuite() {
		t.Errorf("the pool returned has training %v, want mix true and shuffle false", got.GetTraining())
	}
	env.MustPool(ctx, trainingPool(prj.GetProjectId()))
	posts := env.Requests(http.MethodPost, "/api/v1/trainings")
	set, unset := gatewaytest.DecodeJSON(t, posts[0].Body).(map[string]any), gatewaytest.DecodeJSON(t, posts[1].Body).(map[string]any)
	if set["shuffle_tasks_in_task_suite"] != false || set["mix_tasks_in_creation_order"] != true {
		t.Errorf("POST /trainings = %s, want shuffle_tasks_in_task_suite false and mix_tasks_in_creation_order true", posts[0].Body)
	}
	if _, ok := unset["shuffle_tasks_in_task_suite"]; ok {
		t.Errorf("POST /trainings of a training that sets no order = %s, want Toloka's default", posts[1].Body)
	}
}

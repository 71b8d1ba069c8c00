package pool

import (
	"context"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Toloka's documented ranges of a training.
const (
	MaxTrainingTasksInTaskSuite = 500
	MaxTaskSuitesRequiredToPass = 500
)

// trainingFields are the Pool fields a TRAINING pool may set; output-only
// fields are cleared before validation.
var trainingFields = map[protoreflect.Name]bool{
	"project_id": true, "private_name": true, "private_comment": true,
	"may_contain_adult_content": true, "reward_per_assignment": true, "assignment_max_duration_seconds": true,
	"type": true, "training": true,
	"pool_id": true, "tenant_id": true, "toloka_pool_id": true, "status": true, "last_close_reason": true,
	"create_time": true, "last_started": true, "last_stopped": true,
}

// isTraining reports whether p is a TRAINING pool.
func isTraining(p *crowdgatev1.Pool) bool {
	return p.GetType() == crowdgatev1.PoolType_POOL_TYPE_TRAINING
}

// tolokaTraining validates p, a TRAINING pool of project prj, and returns
// the training to send Toloka. Errors name fields under "pool.".
func tolokaTraining(p *crowdgatev1.Pool, prj *crowdgatev1.Project, stored *crowdgatev1.Pool) (*toloka.Training, error) {
	const f = "pool"
	var extra error
	p.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Name() == "public_description" && stored != nil && p.GetPublicDescription() == stored.GetPublicDescription() {
			return true // stored before it was refused; never sent (Toloka has no such field)
		}
		if !trainingFields[fd.Name()] {
			extra = bad(join(f, string(fd.Name())), "is not a field of TRAINING pools (a training is unpaid, does not expire and has no public description, filter, rules or mixing of its own; its task order is in training)")
			return false
		}
		return true
	})
	if extra != nil {
		return nil, extra
	}
	if strings.TrimSpace(p.GetPrivateName()) == "" {
		return nil, bad(join(f, "private_name"), "is required")
	}
	if r := p.GetRewardPerAssignment(); r != "" {
		d, err := money.Parse(r)
		if err != nil || d.Sign() != 0 {
			return nil, bad(join(f, "reward_per_assignment"), "must be 0 or unset for a TRAINING pool (training is unpaid), got %q", r)
		}
	}
	tr := p.GetTraining()
	if tr == nil {
		return nil, bad(join(f, "training"), "is required for a TRAINING pool (training_tasks_in_task_suite_count)")
	}
	tf := join(f, "training")
	out := &toloka.Training{
		ProjectID:               prj.GetTolokaProjectId(),
		PrivateName:             p.GetPrivateName(),
		PrivateComment:          p.GetPrivateComment(),
		MayContainAdultContent:  toloka.Ptr(p.GetMayContainAdultContent()),
		InheritedInstructions:   toloka.Ptr(true),
		PublicInstructions:      tr.GetPublicInstructions(),
		MixTasksInCreationOrder: tr.MixTasksInCreationOrder,
		ShuffleTasksInTaskSuite: tr.ShuffleTasksInTaskSuite,
	}
	if err := between(join(tf, "training_tasks_in_task_suite_count"), int64(tr.GetTrainingTasksInTaskSuiteCount()), 0, MaxTrainingTasksInTaskSuite); err != nil {
		return nil, err
	}
	out.TrainingTasksInTaskSuiteCount = toloka.Ptr(int(tr.GetTrainingTasksInTaskSuiteCount()))
	if tr.TaskSuitesRequiredToPass != nil {
		if err := between(join(tf, "task_suites_required_to_pass"), int64(tr.GetTaskSuitesRequiredToPass()), 0, MaxTaskSuitesRequiredToPass); err != nil {
			return nil, err
		}
		out.TaskSuitesRequiredToPass = toloka.Ptr(int(tr.GetTaskSuitesRequiredToPass()))
	}
	if tr.RetryTrainingAfterDays != nil {
		if err := atLeast(join(tf, "retry_training_after_days"), int64(tr.GetRetryTrainingAfterDays()), 1); err != nil {
			return nil, err
		}
		out.RetryTrainingAfterDays = toloka.Ptr(int(tr.GetRetryTrainingAfterDays()))
	}
	if tr.InheritedInstructions != nil {
		out.InheritedInstructions = toloka.Ptr(tr.GetInheritedInstructions())
	}
	if !*out.InheritedInstructions && strings.TrimSpace(tr.GetPublicInstructions()) == "" {
		return nil, bad(join(tf, "public_instructions"), "is required when inherited_instructions is false")
	}
	if s := p.GetAssignmentMaxDurationSeconds(); s != 0 {
		if err := atLeast(join(f, "assignment_max_duration_seconds"), s, MinAssignmentMaxDurationSeconds); err != nil {
			return nil, err
		}
		out.AssignmentMaxDurationSeconds = toloka.Ptr(int(s))
	}
	return out, nil
}

// remote is a pool's object in Toloka: a pool, or a training for a
// TRAINING pool. Both read and move the same way.
type remote struct {
	account  *toloka.Account
	id       string
	training bool
}

func remoteOf(account *toloka.Account, p *crowdgatev1.Pool) remote {
	return remote{account: account, id: p.GetTolokaPoolId(), training: isTraining(p)}
}

// get returns the object's state.
func (r remote) get(ctx context.Context) (*toloka.Pool, error) {
	if r.training {
		t, err := r.account.GetTraining(ctx, r.id)
		if err != nil {
			return nil, err
		}
		return t.State(), nil
	}
	return r.account.GetPool(ctx, r.id)
}

// act starts open, close, archive or close-for-update.
func (r remote) act(ctx context.Context, action string) (*toloka.Operation, error) {
	if r.training {
		return r.account.TrainingAction(ctx, r.id, action)
	}
	switch action {
	case "open":
		return r.account.OpenPool(ctx, r.id)
	case "close":
		return r.account.ClosePool(ctx, r.id)
	case "close-for-update":
		return r.account.ClosePoolForUpdate(ctx, r.id)
	}
	return r.account.ArchivePool(ctx, r.id)
}

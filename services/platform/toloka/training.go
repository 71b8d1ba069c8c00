package toloka

import (
	"context"
	"net/http"
)

// Operation types of trainings.
const (
	OperationTrainingOpen    = "TRAINING.OPEN"
	OperationTrainingClose   = "TRAINING.CLOSE"
	OperationTrainingArchive = "TRAINING.ARCHIVE"
)

// Training is a Toloka training (POST /trainings): a pool of training tasks
// a Toloker passes before a pool whose quality_control.training_requirement
// names it. ID, Status, LastCloseReason, Created, LastStarted, LastStopped
// and Owner are set by Toloka and never sent.
type Training struct {
	ID string `json:"id,omitempty"`
	// ProjectID, PrivateName, InheritedInstructions and
	// TrainingTasksInTaskSuiteCount are required.
	ProjectID                     string `json:"project_id,omitempty"`
	PrivateName                   string `json:"private_name,omitempty"`
	PrivateComment                string `json:"private_comment,omitempty"`
	MayContainAdultContent        *bool  `json:"may_contain_adult_content,omitempty"`
	InheritedInstructions         *bool  `json:"inherited_instructions,omitempty"`
	PublicInstructions            string `json:"public_instructions,omitempty"`
	AssignmentMaxDurationSeconds  *int   `json:"assignment_max_duration_seconds,omitempty"`
	MixTasksInCreationOrder       *bool  `json:"mix_tasks_in_creation_order,omitempty"`
	ShuffleTasksInTaskSuite       *bool  `json:"shuffle_tasks_in_task_suite,omitempty"`
	TrainingTasksInTaskSuiteCount *int   `json:"training_tasks_in_task_suite_count,omitempty"`
	TaskSuitesRequiredToPass      *int   `json:"task_suites_required_to_pass,omitempty"`
	RetryTrainingAfterDays        *int   `json:"retry_training_after_days,omitempty"`

	Status          PoolStatus `json:"status,omitempty"`
	LastCloseReason string     `json:"last_close_reason,omitempty"`
	Created         *Time      `json:"created,omitempty"`
	LastStarted     *Time      `json:"last_started,omitempty"`
	LastStopped     *Time      `json:"last_stopped,omitempty"`
	Owner           *Owner     `json:"owner,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes t, Extra included.
func (t Training) MarshalJSON() ([]byte, error) {
	type plain Training
	return marshalWithExtra(plain(t), t.Extra)
}

// UnmarshalJSON reads t, keeping unmodelled fields in Extra.
func (t *Training) UnmarshalJSON(b []byte) error {
	type plain Training
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*t = Training(v)
	t.Extra = x
	return nil
}

func (t Training) forRequest() Training {
	t.ID, t.Status, t.LastCloseReason = "", "", ""
	t.Created, t.LastStarted, t.LastStopped, t.Owner = nil, nil, nil, nil
	return t
}

// State returns t's state as a Pool's (status, close reason and times), so
// callers read both kinds the same way.
func (t *Training) State() *Pool {
	return &Pool{ID: t.ID, Status: t.Status, LastCloseReason: t.LastCloseReason, Created: t.Created,
		LastStarted: t.LastStarted, LastStopped: t.LastStopped, Type: "TRAINING"}
}

// CreateTraining creates t (POST /trainings), counted against the
// create-pool limits and retried only when Toloka refused it.
func (a *Account) CreateTraining(ctx context.Context, t *Training) (*Training, error) {
	if t == nil {
		return nil, invalid("training", "must not be empty")
	}
	var out Training
	if _, err := a.do(ctx, request{op: "training.create", method: http.MethodPost, path: "/trainings",
		body: t.forRequest(), out: &out, mode: retryRefused, limits: a.client.limits.CreatePool, resource: "training"}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTraining returns training id (GET /trainings/{id}).
func (a *Account) GetTraining(ctx context.Context, id string) (*Training, error) {
	path, err := objectPath("/trainings", "training_id", id)
	if err != nil {
		return nil, err
	}
	var out Training
	if _, err := a.do(ctx, request{op: "training.get", method: http.MethodGet, path: path, out: &out, resource: "training", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateTraining replaces training id with t (PUT /trainings/{id}).
func (a *Account) UpdateTraining(ctx context.Context, id string, t *Training) (*Training, error) {
	path, err := objectPath("/trainings", "training_id", id)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, invalid("training", "must not be empty")
	}
	var out Training
	if _, err := a.do(ctx, request{op: "training.update", method: http.MethodPut, path: path, body: t.forRequest(), out: &out, resource: "training", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// TrainingAction starts action (open, close, archive or close-for-update)
// on training id (POST /trainings/{id}/{action}). It returns the operation,
// or nil and no error when the training is in that state already (204).
func (a *Account) TrainingAction(ctx context.Context, id, action string) (*Operation, error) {
	path, err := objectPath("/trainings", "training_id", id)
	if err != nil {
		return nil, err
	}
	switch action {
	case "open", "close", "archive", "close-for-update":
	default:
		return nil, invalid("action", "must be open, close, archive or close-for-update")
	}
	return a.startOperation(ctx, "training."+action, path+"/"+action, "training", id)
}

// ClosePoolForUpdate stops pool id for editing (POST
// /pools/{id}/close-for-update): Toloka closes it with last_close_reason
// FOR_UPDATE. It returns the operation, or nil and no error when the pool
// is closed already (204).
func (a *Account) ClosePoolForUpdate(ctx context.Context, id string) (*Operation, error) {
	return a.poolAction(ctx, id, "close-for-update")
}

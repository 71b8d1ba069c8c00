package toloka

import (
	"encoding/json"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// PoolStatus is a pool's status.
type PoolStatus string

// Pool statuses.
const (
	PoolOpen     PoolStatus = "OPEN"
	PoolClosed   PoolStatus = "CLOSED"
	PoolArchived PoolStatus = "ARCHIVED"
	PoolLocked   PoolStatus = "LOCKED"
)

// Reasons a pool was last closed (Pool.LastCloseReason).
const (
	CloseManual                   = "MANUAL"
	CloseExpired                  = "EXPIRED"
	CloseCompleted                = "COMPLETED"
	CloseNotEnoughBalance         = "NOT_ENOUGH_BALANCE"
	CloseAssignmentsLimitExceeded = "ASSIGNMENTS_LIMIT_EXCEEDED"
	CloseBlocked                  = "BLOCKED"
	CloseForUpdate                = "FOR_UPDATE"
)

// Pool is a Toloka pool (seed 003). Optional fields are pointers or
// omitempty, so a request carries exactly the fields that are set. ID,
// Status, LastCloseReason, Created, LastStarted, LastStopped, Type and Owner
// are set by Toloka and never sent.
type Pool struct {
	// ID is assigned by Toloka.
	ID string `json:"id,omitempty"`
	// ProjectID is the pool's project (required).
	ProjectID string `json:"project_id,omitempty"`
	// PrivateName is visible to the requester only (required).
	PrivateName string `json:"private_name,omitempty"`
	// PrivateComment is visible to the requester only.
	PrivateComment string `json:"private_comment,omitempty"`
	// PublicDescription replaces the project's in the task list.
	PublicDescription string `json:"public_description,omitempty"`
	// MayContainAdultContent is required.
	MayContainAdultContent *bool `json:"may_contain_adult_content,omitempty"`
	// WillExpire is when the pool closes even if unfinished (required).
	WillExpire *Time `json:"will_expire,omitempty"`
	// RewardPerAssignment is the price of a task suite in U.S. dollars
	// (required; at least 0.01 except in training-only pools).
	RewardPerAssignment *money.Decimal `json:"reward_per_assignment,omitempty"`
	// DynamicPricingConfig prices by skill.
	DynamicPricingConfig *DynamicPricingConfig `json:"dynamic_pricing_config,omitempty"`
	// AssignmentMaxDurationSeconds is the time allowed per task suite
	// (required; at least 5).
	AssignmentMaxDurationSeconds *int `json:"assignment_max_duration_seconds,omitempty"`
	// AutoAcceptSolutions accepts answers without review (Toloka's default
	// is true).
	AutoAcceptSolutions *bool `json:"auto_accept_solutions,omitempty"`
	// AutoAcceptPeriodDay is the review period, 1 to 21 days.
	AutoAcceptPeriodDay *int `json:"auto_accept_period_day,omitempty"`
	// AutoCloseAfterCompleteDelaySeconds delays closing a completed pool,
	// 0 to 259200.
	AutoCloseAfterCompleteDelaySeconds *int `json:"auto_close_after_complete_delay_seconds,omitempty"`
	// AssignmentsIssuingConfig configures issuing order.
	AssignmentsIssuingConfig *AssignmentsIssuingConfig `json:"assignments_issuing_config,omitempty"`
	// Filter selects Tolokers; Toloka's filter grammar is open-ended, so it
	// is kept as raw JSON.
	Filter json.RawMessage `json:"filter,omitempty"`
	// QualityControl holds training, captcha, rules and selective review.
	QualityControl *QualityControl `json:"quality_control,omitempty"`
	// DynamicOverlapConfig configures incremental relabeling.
	DynamicOverlapConfig *DynamicOverlapConfig `json:"dynamic_overlap_config,omitempty"`
	// Defaults apply to uploaded task suites (required).
	Defaults *PoolDefaults `json:"defaults,omitempty"`
	// MixerConfig configures smart mixing.
	MixerConfig *MixerConfig `json:"mixer_config,omitempty"`
	// Priority is -100 to 100 (Toloka's default 0).
	Priority *int `json:"priority,omitempty"`

	// Status is OPEN, CLOSED, ARCHIVED or LOCKED (set by Toloka).
	Status PoolStatus `json:"status,omitempty"`
	// LastCloseReason says why the pool last closed (set by Toloka).
	LastCloseReason string `json:"last_close_reason,omitempty"`
	// Created, LastStarted and LastStopped are set by Toloka.
	Created     *Time `json:"created,omitempty"`
	LastStarted *Time `json:"last_started,omitempty"`
	LastStopped *Time `json:"last_stopped,omitempty"`
	// Type is REGULAR or TRAINING (set by Toloka).
	Type string `json:"type,omitempty"`
	// Owner is the requester who owns the pool (set by Toloka).
	Owner *Owner `json:"owner,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes p, Extra included.
func (p Pool) MarshalJSON() ([]byte, error) {
	type plain Pool
	return marshalWithExtra(plain(p), p.Extra)
}

// UnmarshalJSON reads p, keeping unmodelled fields in Extra.
func (p *Pool) UnmarshalJSON(b []byte) error {
	type plain Pool
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*p = Pool(v)
	p.Extra = x
	return nil
}

// forRequest returns a copy of p without the fields Toloka sets.
func (p Pool) forRequest() Pool {
	p.ID, p.Status, p.LastCloseReason, p.Type = "", "", "", ""
	p.Created, p.LastStarted, p.LastStopped, p.Owner = nil, nil, nil, nil
	return p
}

// DynamicPricingConfig prices task suites by a skill's value.
type DynamicPricingConfig struct {
	// Type is SKILL.
	Type      string            `json:"type,omitempty"`
	SkillID   string            `json:"skill_id,omitempty"`
	Intervals []PricingInterval `json:"intervals,omitempty"`
}

// PricingInterval is a skill range and its price.
type PricingInterval struct {
	From                *int           `json:"from,omitempty"`
	To                  *int           `json:"to,omitempty"`
	RewardPerAssignment *money.Decimal `json:"reward_per_assignment,omitempty"`
}

// AssignmentsIssuingConfig is a pool's assignments_issuing_config.
type AssignmentsIssuingConfig struct {
	IssueTaskSuitesInCreationOrder *bool `json:"issue_task_suites_in_creation_order,omitempty"`
}

// DynamicOverlapConfig is a pool's dynamic_overlap_config.
type DynamicOverlapConfig struct {
	// Type is BASIC.
	Type       string `json:"type,omitempty"`
	MaxOverlap *int   `json:"max_overlap,omitempty"`
	// MinConfidence is 0 to 1, digits kept as given.
	MinConfidence       *money.Decimal        `json:"min_confidence,omitempty"`
	AnswerWeightSkillID string                `json:"answer_weight_skill_id,omitempty"`
	Fields              []DynamicOverlapField `json:"fields,omitempty"`
}

// DynamicOverlapField names an output field used for aggregation.
type DynamicOverlapField struct {
	Name string `json:"name"`
}

// PoolDefaults is a pool's defaults.
type PoolDefaults struct {
	DefaultOverlapForNewTaskSuites *int `json:"default_overlap_for_new_task_suites,omitempty"`
	DefaultOverlapForNewTasks      *int `json:"default_overlap_for_new_tasks,omitempty"`
}

// MixerConfig is a pool's mixer_config (smart mixing).
type MixerConfig struct {
	RealTasksCount                   *int                      `json:"real_tasks_count,omitempty"`
	GoldenTasksCount                 *int                      `json:"golden_tasks_count,omitempty"`
	TrainingTasksCount               *int                      `json:"training_tasks_count,omitempty"`
	MinRealTasksCount                *int                      `json:"min_real_tasks_count,omitempty"`
	MinGoldenTasksCount              *int                      `json:"min_golden_tasks_count,omitempty"`
	MinTrainingTasksCount            *int                      `json:"min_training_tasks_count,omitempty"`
	ForceLastAssignment              *bool                     `json:"force_last_assignment,omitempty"`
	ForceLastAssignmentDelaySeconds  *int                      `json:"force_last_assignment_delay_seconds,omitempty"`
	MixTasksInCreationOrder          *bool                     `json:"mix_tasks_in_creation_order,omitempty"`
	ShuffleTasksInTaskSuite          *bool                     `json:"shuffle_tasks_in_task_suite,omitempty"`
	GoldenTaskDistributionFunction   *TaskDistributionFunction `json:"golden_task_distribution_function,omitempty"`
	TrainingTaskDistributionFunction *TaskDistributionFunction `json:"training_task_distribution_function,omitempty"`
}

// TaskDistributionFunction varies how often a kind of task is issued as a
// Toloker completes more tasks.
type TaskDistributionFunction struct {
	// Scope is POOL or PROJECT.
	Scope string `json:"scope,omitempty"`
	// Distribution is UNIFORM.
	Distribution string                 `json:"distribution,omitempty"`
	WindowDays   *int                   `json:"window_days,omitempty"`
	Intervals    []DistributionInterval `json:"intervals,omitempty"`
}

// DistributionInterval is a range of completed tasks and the frequency
// within it.
type DistributionInterval struct {
	From      *int `json:"from,omitempty"`
	To        *int `json:"to,omitempty"`
	Frequency *int `json:"frequency,omitempty"`
}

// QualityControl is a pool's (or project's) quality_control.
type QualityControl struct {
	TrainingRequirement *TrainingRequirement `json:"training_requirement,omitempty"`
	// CaptchaFrequency is LOW, MEDIUM or HIGH.
	CaptchaFrequency  string                 `json:"captcha_frequency,omitempty"`
	Configs           []QualityControlConfig `json:"configs,omitempty"`
	CheckpointsConfig *CheckpointsConfig     `json:"checkpoints_config,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes q, Extra included.
func (q QualityControl) MarshalJSON() ([]byte, error) {
	type plain QualityControl
	return marshalWithExtra(plain(q), q.Extra)
}

// UnmarshalJSON reads q, keeping unmodelled fields in Extra.
func (q *QualityControl) UnmarshalJSON(b []byte) error {
	type plain QualityControl
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*q = QualityControl(v)
	q.Extra = x
	return nil
}

// TrainingRequirement links a training pool.
type TrainingRequirement struct {
	TrainingPoolID            string `json:"training_pool_id,omitempty"`
	TrainingPassingSkillValue *int   `json:"training_passing_skill_value,omitempty"`
}

// CheckpointsConfig is selective review.
type CheckpointsConfig struct {
	RealSettings     *CheckpointSettings `json:"real_settings,omitempty"`
	GoldenSettings   *CheckpointSettings `json:"golden_settings,omitempty"`
	TrainingSettings *CheckpointSettings `json:"training_settings,omitempty"`
}

// CheckpointSettings is selective review of one kind of task.
type CheckpointSettings struct {
	TargetOverlap            *int                      `json:"target_overlap,omitempty"`
	TaskDistributionFunction *TaskDistributionFunction `json:"task_distribution_function,omitempty"`
}

// QualityControlConfig is one quality control rule set (seed 004): a
// collector and the rules applied to what it collects.
type QualityControlConfig struct {
	CollectorConfig *CollectorConfig `json:"collector_config,omitempty"`
	Rules           []Rule           `json:"rules,omitempty"`
}

// CollectorConfig says what statistics to collect.
type CollectorConfig struct {
	// Type is GOLDEN_SET, MAJORITY_VOTE, INCOME, SKIPPED_IN_ROW_ASSIGNMENTS,
	// ANSWER_COUNT, ASSIGNMENT_SUBMIT_TIME, ACCEPTANCE_RATE,
	// ASSIGNMENTS_ASSESSMENT, USERS_ASSESSMENT, ...
	Type       string               `json:"type"`
	Parameters *CollectorParameters `json:"parameters,omitempty"`

	// Extra holds fields this package does not model (uuid, ...).
	Extra Extra `json:"-"`
}

// MarshalJSON writes c, Extra included.
func (c CollectorConfig) MarshalJSON() ([]byte, error) {
	type plain CollectorConfig
	return marshalWithExtra(plain(c), c.Extra)
}

// UnmarshalJSON reads c, keeping unmodelled fields in Extra.
func (c *CollectorConfig) UnmarshalJSON(b []byte) error {
	type plain CollectorConfig
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*c = CollectorConfig(v)
	c.Extra = x
	return nil
}

// CollectorParameters are a collector's parameters.
type CollectorParameters struct {
	// HistorySize is how many recent responses count.
	HistorySize *int `json:"history_size,omitempty"`

	// Extra holds the parameters of other collectors
	// (fast_submit_threshold_seconds, answer_threshold, ...).
	Extra Extra `json:"-"`
}

// MarshalJSON writes p, Extra included.
func (p CollectorParameters) MarshalJSON() ([]byte, error) {
	type plain CollectorParameters
	return marshalWithExtra(plain(p), p.Extra)
}

// UnmarshalJSON reads p, keeping unmodelled fields in Extra.
func (p *CollectorParameters) UnmarshalJSON(b []byte) error {
	type plain CollectorParameters
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*p = CollectorParameters(v)
	p.Extra = x
	return nil
}

// Rule is a set of conditions and the action taken when they hold.
type Rule struct {
	Conditions []Condition `json:"conditions,omitempty"`
	Action     *Action     `json:"action,omitempty"`
}

// Condition compares a collected value with a threshold.
type Condition struct {
	// Key is the collected value ("golden_set_answers_count").
	Key string `json:"key"`
	// Operator is EQ, NE, GT, LT, GTE or LTE.
	Operator string `json:"operator"`
	// Value is the threshold as JSON (a number, or a boolean for some keys).
	Value json.RawMessage `json:"value"`
}

// Action is what a rule does.
type Action struct {
	// Type is RESTRICTION, RESTRICTION_V2, SET_SKILL_FROM_OUTPUT_FIELD,
	// CHANGE_OVERLAP, REJECT_ALL_ASSIGNMENTS, APPROVE_ALL_ASSIGNMENTS or
	// SET_SKILL.
	Type       string            `json:"type"`
	Parameters *ActionParameters `json:"parameters,omitempty"`
}

// ActionParameters are an action's parameters.
type ActionParameters struct {
	// Scope is POOL, PROJECT or ALL_PROJECTS.
	Scope         string `json:"scope,omitempty"`
	SkillID       string `json:"skill_id,omitempty"`
	FromField     string `json:"from_field,omitempty"`
	SkillValue    *int   `json:"skill_value,omitempty"`
	Delta         *int   `json:"delta,omitempty"`
	PublicComment string `json:"public_comment,omitempty"`
	OpenPool      *bool  `json:"open_pool,omitempty"`
	// DurationUnit is MINUTES, HOURS, DAYS or PERMANENT.
	DurationUnit   string `json:"duration_unit,omitempty"`
	Duration       *int   `json:"duration,omitempty"`
	PrivateComment string `json:"private_comment,omitempty"`

	// Extra holds parameters this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes p, Extra included.
func (p ActionParameters) MarshalJSON() ([]byte, error) {
	type plain ActionParameters
	return marshalWithExtra(plain(p), p.Extra)
}

// UnmarshalJSON reads p, keeping unmodelled fields in Extra.
func (p *ActionParameters) UnmarshalJSON(b []byte) error {
	type plain ActionParameters
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*p = ActionParameters(v)
	p.Extra = x
	return nil
}

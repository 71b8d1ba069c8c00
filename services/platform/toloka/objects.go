package toloka

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/money"
)

// OperationStatus is an asynchronous operation's status.
type OperationStatus string

// Operation statuses. SUCCESS and FAIL are final.
const (
	OperationPending OperationStatus = "PENDING"
	OperationRunning OperationStatus = "RUNNING"
	OperationSuccess OperationStatus = "SUCCESS"
	OperationFail    OperationStatus = "FAIL"
)

// Operation types this client starts.
const (
	OperationPoolOpen       = "POOL.OPEN"
	OperationPoolClose      = "POOL.CLOSE"
	OperationPoolArchive    = "POOL.ARCHIVE"
	OperationProjectArchive = "PROJECT.ARCHIVE"
)

// Operation is an asynchronous Toloka operation.
type Operation struct {
	ID        string          `json:"id"`
	Type      string          `json:"type,omitempty"`
	Status    OperationStatus `json:"status,omitempty"`
	Submitted *Time           `json:"submitted,omitempty"`
	Started   *Time           `json:"started,omitempty"`
	Finished  *Time           `json:"finished,omitempty"`
	// Progress is a percentage.
	Progress *int `json:"progress,omitempty"`
	// Parameters and Details depend on Type ({"pool_id": "..."}).
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Details    json.RawMessage `json:"details,omitempty"`
}

// Done reports whether the operation has finished (SUCCESS or FAIL).
func (o *Operation) Done() bool {
	return o.Status == OperationSuccess || o.Status == OperationFail
}

// AssignmentStatus is an assignment's status.
type AssignmentStatus string

// Assignment statuses.
const (
	AssignmentActive    AssignmentStatus = "ACTIVE"
	AssignmentSubmitted AssignmentStatus = "SUBMITTED"
	AssignmentAccepted  AssignmentStatus = "ACCEPTED"
	AssignmentRejected  AssignmentStatus = "REJECTED"
	AssignmentSkipped   AssignmentStatus = "SKIPPED"
	AssignmentExpired   AssignmentStatus = "EXPIRED"
)

// Assignment is a task suite issued to a Toloker.
type Assignment struct {
	// ID looks like "00022cfa46--637cf4098ccdeb4a260737de".
	ID          string           `json:"id"`
	TaskSuiteID string           `json:"task_suite_id,omitempty"`
	PoolID      string           `json:"pool_id,omitempty"`
	UserID      string           `json:"user_id,omitempty"`
	Status      AssignmentStatus `json:"status,omitempty"`
	Reward      *money.Decimal   `json:"reward,omitempty"`
	// Tasks and Solutions are kept as Toloka sent them.
	Tasks         json.RawMessage `json:"tasks,omitempty"`
	Solutions     json.RawMessage `json:"solutions,omitempty"`
	Mixed         *bool           `json:"mixed,omitempty"`
	PublicComment string          `json:"public_comment,omitempty"`
	Created       *Time           `json:"created,omitempty"`
	Submitted     *Time           `json:"submitted,omitempty"`
	Accepted      *Time           `json:"accepted,omitempty"`
	Rejected      *Time           `json:"rejected,omitempty"`
	Skipped       *Time           `json:"skipped,omitempty"`
	Expired       *Time           `json:"expired,omitempty"`
	Owner         *Owner          `json:"owner,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes a, Extra included.
func (a Assignment) MarshalJSON() ([]byte, error) {
	type plain Assignment
	return marshalWithExtra(plain(a), a.Extra)
}

// UnmarshalJSON reads a, keeping unmodelled fields in Extra.
func (a *Assignment) UnmarshalJSON(b []byte) error {
	type plain Assignment
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*a = Assignment(v)
	a.Extra = x
	return nil
}

// AssignmentPatch is the body of PATCH /assignments/{id}.
type AssignmentPatch struct {
	// Status is ACCEPTED or REJECTED. Toloka allows SUBMITTED->ACCEPTED,
	// SUBMITTED->REJECTED and REJECTED->ACCEPTED.
	Status AssignmentStatus `json:"status"`
	// PublicComment is shown to the Toloker (up to 2048 characters).
	PublicComment string `json:"public_comment,omitempty"`
}

// ExternalSubmit is the body of POST /tasks/external/submit (seed 001): one
// task done on the third-party platform, for which Toloka pays Reward.
//
// Set RetryID: it is Toloka's idempotency key for the submit, and the client
// retries a submit only when it is set (sending the same value every time).
type ExternalSubmit struct {
	// PoolID is the pool the task belongs to (required). Toloka ids are
	// strings elsewhere; this one is sent as a JSON number, so it must be
	// decimal digits.
	PoolID string `json:"-"`
	// UserID is the Toloker's ID (required).
	UserID string `json:"user_id"`
	// RetryID identifies this submit across retries (optional but
	// recommended).
	RetryID string `json:"retry_id,omitempty"`
	// Reward is what Toloka pays for the task (required), sent with exactly
	// its digits.
	Reward money.Decimal `json:"reward"`
	// Quality is the task's quality, 0 to 1.
	Quality *money.Decimal `json:"quality,omitempty"`
	// CloseSession marks the Toloker's last task on the platform.
	CloseSession *bool `json:"close_session,omitempty"`
	// CustomLog is a JSON document, as a string, for antifraud.
	CustomLog string `json:"custom_log,omitempty"`
	// StartTime and EndTime bound the work. They are sent in UTC as in seed
	// 001's examples, "2024-08-22T14:00:00Z" (milliseconds added when not
	// zero).
	StartTime *time.Time `json:"-"`
	EndTime   *time.Time `json:"-"`
	// Skipped marks a task the Toloker did not complete.
	Skipped *bool `json:"skipped,omitempty"`
	// GoldenTasksCount, TrainingTasksCount and RealTasksCount count the
	// exam, training and paid tasks included.
	GoldenTasksCount   *int `json:"golden_tasks_count,omitempty"`
	TrainingTasksCount *int `json:"training_tasks_count,omitempty"`
	RealTasksCount     *int `json:"real_tasks_count,omitempty"`
}

// MarshalJSON writes the submit body: pool_id as a JSON number, times in
// seed 001's format.
func (s ExternalSubmit) MarshalJSON() ([]byte, error) {
	type plain ExternalSubmit
	return json.Marshal(struct {
		PoolID json.Number `json:"pool_id"`
		plain
		StartTime string `json:"start_time,omitempty"`
		EndTime   string `json:"end_time,omitempty"`
	}{PoolID: json.Number(s.PoolID), plain: plain(s), StartTime: submitTime(s.StartTime), EndTime: submitTime(s.EndTime)})
}

// UnmarshalJSON reads a submit body (pool_id as a JSON number or string),
// so stores and emulators can decode what MarshalJSON wrote.
func (s *ExternalSubmit) UnmarshalJSON(b []byte) error {
	type plain ExternalSubmit
	var v struct {
		PoolID json.RawMessage `json:"pool_id"`
		plain
		StartTime string `json:"start_time"`
		EndTime   string `json:"end_time"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = ExternalSubmit(v.plain)
	if len(v.PoolID) > 0 && string(v.PoolID) != "null" {
		var n json.Number
		if err := json.Unmarshal(v.PoolID, &n); err != nil {
			var str string
			if err := json.Unmarshal(v.PoolID, &str); err != nil {
				return fmt.Errorf("toloka: pool_id %s is neither a number nor a string", v.PoolID)
			}
			n = json.Number(str)
		}
		s.PoolID = n.String()
	}
	for _, f := range []struct {
		in  string
		out **time.Time
	}{{v.StartTime, &s.StartTime}, {v.EndTime, &s.EndTime}} {
		if f.in == "" {
			continue
		}
		t, err := ParseTime(f.in)
		if err != nil {
			return err
		}
		tt := t.Time
		*f.out = &tt
	}
	return nil
}

func submitTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	u := t.UTC()
	if u.Nanosecond()/int(time.Millisecond) == 0 {
		return u.Format("2006-01-02T15:04:05Z")
	}
	return u.Format("2006-01-02T15:04:05.000Z")
}

// ExternalSubmitResult is Toloka's answer to an external submit.
type ExternalSubmitResult struct {
	// SpeedQualityBalanceMatch is true when the Toloker is in the pool's top
	// N percent by speed and quality.
	SpeedQualityBalanceMatch bool `json:"speed_quality_balance_match"`
	// RestrictionMatch is true when the Toloker is banned or restricted.
	RestrictionMatch bool `json:"restriction_match"`
	// FilterMatch is true when the Toloker meets all the task's filters.
	FilterMatch bool `json:"filter_match"`
}

// Restriction scopes.
const (
	ScopeAllProjects = "ALL_PROJECTS"
	ScopeProject     = "PROJECT"
	ScopePool        = "POOL"
)

// UserRestriction bars a Toloker from all projects, a project or a pool.
// ID and Created are set by Toloka and never sent.
type UserRestriction struct {
	ID string `json:"id,omitempty"`
	// Scope is ALL_PROJECTS, PROJECT or POOL.
	Scope     string `json:"scope"`
	UserID    string `json:"user_id"`
	ProjectID string `json:"project_id,omitempty"`
	PoolID    string `json:"pool_id,omitempty"`
	// PrivateComment is visible to the requester only.
	PrivateComment string `json:"private_comment,omitempty"`
	// WillExpire lifts the restriction; nil means never.
	WillExpire *Time `json:"will_expire,omitempty"`
	Created    *Time `json:"created,omitempty"`
}

// UserSkill is a Toloker's value of a skill. ID, ExactValue, Created and
// Modified are set by Toloka and never sent.
type UserSkill struct {
	ID      string `json:"id,omitempty"`
	SkillID string `json:"skill_id"`
	UserID  string `json:"user_id"`
	// Value is 0 to 100, digits kept as given.
	Value *money.Decimal `json:"value,omitempty"`
	// Reason says why the value was set (sent only).
	Reason     string         `json:"reason,omitempty"`
	ExactValue *money.Decimal `json:"exact_value,omitempty"`
	Created    *Time          `json:"created,omitempty"`
	Modified   *Time          `json:"modified,omitempty"`
}

// List is one page of a list call.
type List[T any] struct {
	Items   []T  `json:"items"`
	HasMore bool `json:"has_more"`
}

package toloka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"unicode/utf8"

	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

// ListOptions are the parameters of a list call. Zero fields are not sent.
type ListOptions struct {
	// Limit is the page size (projects and pools: up to 300, Toloka's
	// default 20).
	Limit int
	// Sort is "id", "-id", "created" or "-created".
	Sort string
	// IDGt, IDGte, IDLt and IDLte bound ids.
	IDGt, IDGte, IDLt, IDLte string
	// CreatedGt, CreatedGte, CreatedLt and CreatedLte bound creation times.
	CreatedGt, CreatedGte, CreatedLt, CreatedLte Time
	// Status filters by status (ACTIVE, OPEN, ...).
	Status string
	// ProjectID filters pools by project.
	ProjectID string
	// Filters holds any other query parameter Toloka accepts.
	Filters url.Values
}

func (o ListOptions) values() url.Values {
	v := url.Values{}
	for k, vals := range o.Filters {
		v[k] = append([]string(nil), vals...)
	}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	if o.Limit > 0 {
		v.Set("limit", strconv.Itoa(o.Limit))
	}
	set("sort", o.Sort)
	set("id_gt", o.IDGt)
	set("id_gte", o.IDGte)
	set("id_lt", o.IDLt)
	set("id_lte", o.IDLte)
	set("created_gt", o.CreatedGt.String())
	set("created_gte", o.CreatedGte.String())
	set("created_lt", o.CreatedLt.String())
	set("created_lte", o.CreatedLte.String())
	set("status", o.Status)
	set("project_id", o.ProjectID)
	return v
}

func invalid(field, reason string) error {
	return &serviceerror.InvalidArgument{Field: field, Reason: reason}
}

// objectPath returns base/id after checking id, for calls on one object.
func objectPath(base, field, id string) (string, error) {
	if id == "" {
		return "", invalid(field, "must not be empty")
	}
	return base + "/" + url.PathEscape(id), nil
}

// --- Projects ---

// CreateProject creates p (POST /projects) and returns the project Toloka
// stored. It counts against the create-project limits and is retried only
// when Toloka refused it (429) or the connection was never made: a retry
// after an ambiguous failure could create the project twice.
func (a *Account) CreateProject(ctx context.Context, p *Project) (*Project, error) {
	if p == nil {
		return nil, invalid("project", "must not be empty")
	}
	var out Project
	_, err := a.do(ctx, request{
		op: "project.create", method: http.MethodPost, path: "/projects",
		body: p.forRequest(), out: &out, mode: retryRefused,
		limits: a.client.limits.CreateProject, resource: "project",
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetProject returns project id (GET /projects/{id}).
func (a *Account) GetProject(ctx context.Context, id string) (*Project, error) {
	path, err := objectPath("/projects", "project_id", id)
	if err != nil {
		return nil, err
	}
	var out Project
	if _, err := a.do(ctx, request{op: "project.get", method: http.MethodGet, path: path, out: &out, resource: "project", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListProjects returns one page of projects (GET /projects).
func (a *Account) ListProjects(ctx context.Context, opts ListOptions) (*List[Project], error) {
	var out List[Project]
	if _, err := a.do(ctx, request{op: "project.list", method: http.MethodGet, path: "/projects", query: opts.values(), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllProjects iterates over every project matching opts, paging with
// sort=id and id_gt=<last id> while Toloka reports has_more. opts.Sort is
// replaced by "id". The iteration stops at the first error, which it yields.
func (a *Account) AllProjects(ctx context.Context, opts ListOptions) iter.Seq2[*Project, error] {
	return paginate(ctx, opts, a.ListProjects, func(p *Project) string { return p.ID })
}

// UpdateProject replaces project id with p (PUT /projects/{id}). Fields
// Toloka sets (id, status, created, owner) are not sent.
func (a *Account) UpdateProject(ctx context.Context, id string, p *Project) (*Project, error) {
	path, err := objectPath("/projects", "project_id", id)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, invalid("project", "must not be empty")
	}
	var out Project
	if _, err := a.do(ctx, request{op: "project.update", method: http.MethodPut, path: path, body: p.forRequest(), out: &out, resource: "project", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ArchiveProject starts archiving project id (POST /projects/{id}/archive).
// It returns the operation to wait for, or nil and no error when the project
// is archived already (204). All the project's pools must be archived first.
func (a *Account) ArchiveProject(ctx context.Context, id string) (*Operation, error) {
	path, err := objectPath("/projects", "project_id", id)
	if err != nil {
		return nil, err
	}
	return a.startOperation(ctx, "project.archive", path+"/archive", "project", id)
}

// --- Pools ---

// CreatePool creates p (POST /pools) and returns the pool Toloka stored. It
// counts against the create-pool limits and is retried only when Toloka
// refused it (429) or the connection was never made.
func (a *Account) CreatePool(ctx context.Context, p *Pool) (*Pool, error) {
	if p == nil {
		return nil, invalid("pool", "must not be empty")
	}
	var out Pool
	_, err := a.do(ctx, request{
		op: "pool.create", method: http.MethodPost, path: "/pools",
		body: p.forRequest(), out: &out, mode: retryRefused,
		limits: a.client.limits.CreatePool, resource: "pool",
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetPool returns pool id (GET /pools/{id}).
func (a *Account) GetPool(ctx context.Context, id string) (*Pool, error) {
	path, err := objectPath("/pools", "pool_id", id)
	if err != nil {
		return nil, err
	}
	var out Pool
	if _, err := a.do(ctx, request{op: "pool.get", method: http.MethodGet, path: path, out: &out, resource: "pool", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListPools returns one page of pools (GET /pools).
func (a *Account) ListPools(ctx context.Context, opts ListOptions) (*List[Pool], error) {
	var out List[Pool]
	if _, err := a.do(ctx, request{op: "pool.list", method: http.MethodGet, path: "/pools", query: opts.values(), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllPools iterates over every pool matching opts, like AllProjects.
func (a *Account) AllPools(ctx context.Context, opts ListOptions) iter.Seq2[*Pool, error] {
	return paginate(ctx, opts, a.ListPools, func(p *Pool) string { return p.ID })
}

// UpdatePool replaces pool id with p (PUT /pools/{id}); Toloka requires the
// pool to be closed (else FailedPrecondition). Fields Toloka sets are not
// sent.
func (a *Account) UpdatePool(ctx context.Context, id string, p *Pool) (*Pool, error) {
	path, err := objectPath("/pools", "pool_id", id)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, invalid("pool", "must not be empty")
	}
	var out Pool
	if _, err := a.do(ctx, request{op: "pool.update", method: http.MethodPut, path: path, body: p.forRequest(), out: &out, resource: "pool", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPoolPriority sets pool id's priority, -100 to 100
// (PATCH /pools/{id} {"priority": n}).
func (a *Account) SetPoolPriority(ctx context.Context, id string, priority int) (*Pool, error) {
	path, err := objectPath("/pools", "pool_id", id)
	if err != nil {
		return nil, err
	}
	if priority < -100 || priority > 100 {
		return nil, invalid("priority", "must be between -100 and 100")
	}
	var out Pool
	body := struct {
		Priority int `json:"priority"`
	}{priority}
	if _, err := a.do(ctx, request{op: "pool.patch", method: http.MethodPatch, path: path, body: body, out: &out, resource: "pool", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// OpenPool starts opening pool id (POST /pools/{id}/open). It returns the
// operation, or nil and no error when the pool is open already (204).
func (a *Account) OpenPool(ctx context.Context, id string) (*Operation, error) {
	return a.poolAction(ctx, id, "open")
}

// ClosePool starts closing pool id (POST /pools/{id}/close). It returns the
// operation, or nil and no error when the pool is closed already (204).
func (a *Account) ClosePool(ctx context.Context, id string) (*Operation, error) {
	return a.poolAction(ctx, id, "close")
}

// ArchivePool starts archiving pool id (POST /pools/{id}/archive); the pool
// must be closed. It returns the operation, or nil and no error when the
// pool is archived already (204).
func (a *Account) ArchivePool(ctx context.Context, id string) (*Operation, error) {
	return a.poolAction(ctx, id, "archive")
}

func (a *Account) poolAction(ctx context.Context, id, action string) (*Operation, error) {
	path, err := objectPath("/pools", "pool_id", id)
	if err != nil {
		return nil, err
	}
	return a.startOperation(ctx, "pool."+action, path+"/"+action, "pool", id)
}

// startOperation POSTs to an idempotent operation endpoint: 202 returns the
// operation, 204 (already in that state) returns nil.
func (a *Account) startOperation(ctx context.Context, op, path, resource, id string) (*Operation, error) {
	var out Operation
	status, err := a.do(ctx, request{op: op, method: http.MethodPost, path: path, out: &out, resource: resource, id: id})
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent || out.ID == "" {
		return nil, nil
	}
	return &out, nil
}

// --- Operations ---

// GetOperation returns operation id (GET /operations/{id}).
func (a *Account) GetOperation(ctx context.Context, id string) (*Operation, error) {
	path, err := objectPath("/operations", "operation_id", id)
	if err != nil {
		return nil, err
	}
	var out Operation
	if _, err := a.do(ctx, request{op: "operation.get", method: http.MethodGet, path: path, out: &out, resource: "operation", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitOperation polls operation id, at intervals that double from
// Config.PollInterval to Config.MaxPollInterval, until it is SUCCESS or FAIL
// or ctx ends (Config.OperationTimeout when ctx has no deadline). On SUCCESS
// it returns the operation. On FAIL it returns the operation and an error
// wrapping *serviceerror.FailedPrecondition. When ctx ends it returns the
// last operation seen and an error wrapping ctx's error.
func (a *Account) WaitOperation(ctx context.Context, id string) (*Operation, error) {
	c := a.client
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.OperationTimeout)
		defer cancel()
	}
	interval := c.cfg.PollInterval
	for {
		op, err := a.GetOperation(ctx, id)
		if err != nil {
			return nil, err
		}
		switch op.Status {
		case OperationSuccess:
			return op, nil
		case OperationFail:
			msg := fmt.Sprintf("Toloka operation %s (%s) failed", op.ID, op.Type)
			if len(op.Details) > 0 && string(op.Details) != "null" {
				d := string(op.Details)
				if len(d) > 500 {
					d = d[:500] + "..."
				}
				msg += ": " + d
			}
			return op, fmt.Errorf("toloka: operation.wait: %w", &serviceerror.FailedPrecondition{Message: msg})
		}
		if err := c.cfg.Sleep(ctx, interval); err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return op, fmt.Errorf("toloka: operation.wait: operation %s still %s: %w", id, op.Status, err)
		}
		interval = min(interval*2, c.cfg.MaxPollInterval)
	}
}

// --- Assignments ---

// ListAssignments lists assignments (GET /assignments), for example a
// pool's SUBMITTED ones: Filters pool_id, Status SUBMITTED.
func (a *Account) ListAssignments(ctx context.Context, opts ListOptions) (*List[Assignment], error) {
	var out List[Assignment]
	if _, err := a.do(ctx, request{op: "assignment.list", method: http.MethodGet, path: "/assignments", query: opts.values(), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAssignment returns assignment id (GET /assignments/{id}); its UserID
// identifies the Toloker who was redirected with it.
func (a *Account) GetAssignment(ctx context.Context, id string) (*Assignment, error) {
	path, err := objectPath("/assignments", "assignment_id", id)
	if err != nil {
		return nil, err
	}
	var out Assignment
	if _, err := a.do(ctx, request{op: "assignment.get", method: http.MethodGet, path: path, out: &out, resource: "assignment", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AcceptAssignment sets assignment id to ACCEPTED with comment.
func (a *Account) AcceptAssignment(ctx context.Context, id, comment string) (*Assignment, error) {
	return a.PatchAssignment(ctx, id, AssignmentPatch{Status: AssignmentAccepted, PublicComment: comment})
}

// RejectAssignment sets assignment id to REJECTED with comment.
func (a *Account) RejectAssignment(ctx context.Context, id, comment string) (*Assignment, error) {
	return a.PatchAssignment(ctx, id, AssignmentPatch{Status: AssignmentRejected, PublicComment: comment})
}

// PatchAssignment changes assignment id's status (PATCH /assignments/{id}).
//
// The call is retried on transient failures. When a retry is refused with
// 409 because an earlier attempt already made the change, the assignment is
// read back and returned if it has the requested status.
func (a *Account) PatchAssignment(ctx context.Context, id string, patch AssignmentPatch) (*Assignment, error) {
	path, err := objectPath("/assignments", "assignment_id", id)
	if err != nil {
		return nil, err
	}
	if patch.Status != AssignmentAccepted && patch.Status != AssignmentRejected {
		return nil, invalid("status", "must be ACCEPTED or REJECTED")
	}
	if utf8.RuneCountInString(patch.PublicComment) > 2048 {
		return nil, invalid("public_comment", "must be at most 2048 characters")
	}
	var out Assignment
	_, err = a.do(ctx, request{op: "assignment.patch", method: http.MethodPatch, path: path, body: patch, out: &out, resource: "assignment", id: id})
	var te *Error
	if errors.As(err, &te) && te.StatusCode == http.StatusConflict && te.Attempts > 1 {
		if cur, gerr := a.GetAssignment(ctx, id); gerr == nil && cur.Status == patch.Status {
			return cur, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// --- External submit ---

// SubmitExternal reports a task done on the third-party platform
// (POST /tasks/external/submit): Toloka pays s.Reward to the Toloker.
//
// With s.RetryID set the call is retried on transient failures, sending the
// same retry_id each time, which Toloka uses to recognise the repeat.
// Without it the call is never repeated once a request may have reached
// Toloka (only a connection that was never made is retried), because a
// repeat could pay twice.
func (a *Account) SubmitExternal(ctx context.Context, s *ExternalSubmit) (*ExternalSubmitResult, error) {
	if err := validateSubmit(s); err != nil {
		return nil, err
	}
	mode := retryUnsent
	if s.RetryID != "" {
		mode = retryIdempotent
	}
	// A flag Toloka does not send (an empty body, a field left out) is
	// read as no signal against the Toloker: they match the filters and
	// the balance, and are not restricted. Read as false, a missing
	// filter_match would end their session as FILTERED_OUT and bar them.
	out := ExternalSubmitResult{SpeedQualityBalanceMatch: true, FilterMatch: true}
	if _, err := a.do(ctx, request{
		op: "task.external_submit", method: http.MethodPost, path: "/tasks/external/submit",
		body: *s, out: &out, mode: mode, resource: "pool", id: s.PoolID,
	}); err != nil {
		return nil, err
	}
	return &out, nil
}

var one = money.MustParse("1")

func validateSubmit(s *ExternalSubmit) error {
	if s == nil {
		return invalid("submit", "must not be empty")
	}
	if s.PoolID == "" {
		return invalid("pool_id", "is required")
	}
	if n, err := strconv.ParseInt(s.PoolID, 10, 64); err != nil || n <= 0 || strconv.FormatInt(n, 10) != s.PoolID {
		return invalid("pool_id", "must be a positive decimal integer (Toloka takes a long)")
	}
	if s.UserID == "" {
		return invalid("user_id", "is required")
	}
	if s.Reward.IsZeroValue() {
		return invalid("reward", "is required")
	}
	if s.Reward.Sign() < 0 {
		return invalid("reward", "must not be negative")
	}
	if q := s.Quality; q != nil && (q.Sign() < 0 || q.Cmp(one) > 0) {
		return invalid("quality", "must be between 0 and 1")
	}
	if s.CustomLog != "" && !json.Valid([]byte(s.CustomLog)) {
		return invalid("custom_log", "must be a JSON document")
	}
	if s.StartTime != nil && s.EndTime != nil && s.EndTime.Before(*s.StartTime) {
		return invalid("end_time", "must not be before start_time")
	}
	for field, n := range map[string]*int{
		"golden_tasks_count": s.GoldenTasksCount, "training_tasks_count": s.TrainingTasksCount, "real_tasks_count": s.RealTasksCount,
	} {
		if n != nil && *n < 0 {
			return invalid(field, "must not be negative")
		}
	}
	return nil
}

// --- Users ---

// SetUserRestriction restricts a Toloker (PUT /user-restrictions) and
// returns the stored restriction.
func (a *Account) SetUserRestriction(ctx context.Context, r UserRestriction) (*UserRestriction, error) {
	if r.UserID == "" {
		return nil, invalid("user_id", "is required")
	}
	switch {
	case r.Scope == ScopeAllProjects:
	case r.Scope == ScopeProject && r.ProjectID != "":
	case r.Scope == ScopePool && r.PoolID != "":
	default:
		return nil, invalid("scope", "must be ALL_PROJECTS, PROJECT with project_id, or POOL with pool_id")
	}
	r.ID, r.Created = "", nil
	var out UserRestriction
	if _, err := a.do(ctx, request{op: "user_restriction.set", method: http.MethodPut, path: "/user-restrictions", body: r, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUserRestriction lifts restriction id
// (DELETE /user-restrictions/{id}). A 404 answering a retry counts as
// success: the earlier attempt deleted it.
func (a *Account) DeleteUserRestriction(ctx context.Context, id string) error {
	path, err := objectPath("/user-restrictions", "user_restriction_id", id)
	if err != nil {
		return err
	}
	_, err = a.do(ctx, request{op: "user_restriction.delete", method: http.MethodDelete, path: path, resource: "user restriction", id: id, goneIsDone: true})
	return err
}

var hundred = money.MustParse("100")

// SetUserSkill sets a Toloker's skill value, 0 to 100 (PUT /user-skills),
// and returns the stored skill.
func (a *Account) SetUserSkill(ctx context.Context, s UserSkill) (*UserSkill, error) {
	switch {
	case s.SkillID == "":
		return nil, invalid("skill_id", "is required")
	case s.UserID == "":
		return nil, invalid("user_id", "is required")
	case s.Value == nil:
		return nil, invalid("value", "is required")
	case s.Value.Sign() < 0 || s.Value.Cmp(hundred) > 0:
		return nil, invalid("value", "must be between 0 and 100")
	}
	s.ID, s.ExactValue, s.Created, s.Modified = "", nil, nil, nil
	var out UserSkill
	if _, err := a.do(ctx, request{op: "user_skill.set", method: http.MethodPut, path: "/user-skills", body: s, out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// --- Paging ---

// paginate pages through a list call with sort=id and id_gt=<last id>.
func paginate[T any](ctx context.Context, opts ListOptions, list func(context.Context, ListOptions) (*List[T], error), idOf func(*T) string) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		opts.Sort = "id"
		for {
			page, err := list(ctx, opts)
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Items {
				if !yield(&page.Items[i], nil) {
					return
				}
			}
			if !page.HasMore {
				return
			}
			if len(page.Items) == 0 {
				yield(nil, errors.New("toloka: list: has_more with an empty page"))
				return
			}
			last := idOf(&page.Items[len(page.Items)-1])
			if last == "" || last == opts.IDGt {
				yield(nil, fmt.Errorf("toloka: list: paging does not advance (last id %q)", last))
				return
			}
			opts.IDGt, opts.IDGte = last, ""
		}
	}
}

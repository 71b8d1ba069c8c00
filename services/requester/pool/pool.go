// Package pool manages the pools of EXTERNAL projects.
//
// Every field of seed 003 is validated with Toloka's documented ranges
// before Toloka is called; a bad value is INVALID_ARGUMENT naming its field
// ("pool.mixer_config.force_last_assignment_delay_seconds"). A pool's filter
// sent to Toloka is the project's Toloker requirements ANDed with the pool's
// own filter. Pools are stored per tenant and indexed globally by Toloka
// pool id, so the landing can find the pool of an assignment id.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/requester/credential"
	"github.com/crowdgate/crowdgate/services/requester/project"
	"github.com/crowdgate/crowdgate/services/platform/protostore"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Config is what the service is built from.
type Config struct {
	// Redis stores pools; Prefix starts every key.
	Redis  redis.UniversalClient
	Prefix string
	// Projects gives each pool's project (and through it the Toloka account).
	Projects *project.Service
	// Credentials is kept for callers that build the service by hand; the
	// account is reached through Projects.
	Credentials *credential.Service
	// Log receives the service's logs.
	Log *slog.Logger
	// Now is the clock that decides whether will_expire is in the future
	// (time.Now when nil).
	Now func() time.Time
}

// Service implements crowdgatev1.PoolServiceServer. It also implements
// project.PoolManager (archiving a project archives its pools) and
// project.WorkChecker (assignments awaiting review block archiving).
type Service struct {
	crowdgatev1.UnimplementedPoolServiceServer
	cfg   Config
	store *protostore.Store[*crowdgatev1.Pool]
}

// NewService returns the pool service.
func NewService(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Service{
		cfg:   cfg,
		store: protostore.New(cfg.Redis, cfg.Prefix, "pool", func() *crowdgatev1.Pool { return new(crowdgatev1.Pool) }),
	}
}

// Get returns a tenant's pool as stored (its status as last seen; GetPool
// refreshes it from Toloka).
func (s *Service) Get(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return s.store.Get(ctx, tenantID, poolID)
}

// environments are the Toloka installations a pool id may belong to.
var environments = []crowdgatev1.Environment{crowdgatev1.Environment_ENVIRONMENT_SANDBOX, crowdgatev1.Environment_ENVIRONMENT_PRODUCTION}

// tolokaKey is the global index entry of a Toloka pool id in one
// environment: its value is the tenant id and the pool id.
func (s *Service) tolokaKey(env crowdgatev1.Environment, tolokaPoolID string) string {
	return fmt.Sprintf("%spool-by-toloka:%s:%s", s.cfg.Prefix, strings.TrimPrefix(env.String(), "ENVIRONMENT_"), tolokaPoolID)
}

const indexSep = "\x1f"

// ByTolokaID returns the pools (of any tenant) with this Toloka pool id:
// at most one per environment.
func (s *Service) ByTolokaID(ctx context.Context, tolokaPoolID string) ([]*crowdgatev1.Pool, error) {
	if tolokaPoolID == "" {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(environments))
	_, err := s.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, env := range environments {
			cmds[i] = p.Get(ctx, s.tolokaKey(env, tolokaPoolID))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, unavailable(err)
	}
	var out []*crowdgatev1.Pool
	for _, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, unavailable(err)
		}
		tenantID, poolID, ok := strings.Cut(v, indexSep)
		if !ok {
			continue
		}
		p, err := s.store.Get(ctx, tenantID, poolID)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// TolokaPoolIDFromAssignment returns the Toloka pool id (decimal) of an
// assignment id: Toloka's assignment ids start with the pool id in hex
// ("00022cfa46--637cf4098ccdeb4a260737de" is in pool 36502086).
func TolokaPoolIDFromAssignment(assignmentID string) (string, error) {
	head, tail, ok := strings.Cut(assignmentID, "--")
	if !ok || head == "" || tail == "" || len(head) > 16 {
		return "", serviceerror.NewInvalidArgument("assignment_id", "is not a Toloka assignment id (like 00022cfa46--637cf4098ccdeb4a260737de)")
	}
	for _, s := range []string{head, tail} {
		for _, c := range s {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return "", serviceerror.NewInvalidArgument("assignment_id", "is not a Toloka assignment id (like 00022cfa46--637cf4098ccdeb4a260737de)")
			}
		}
	}
	n, err := strconv.ParseUint(head, 16, 64)
	if err != nil || n == 0 {
		return "", serviceerror.NewInvalidArgument("assignment_id", "is not a Toloka assignment id (like 00022cfa46--637cf4098ccdeb4a260737de)")
	}
	return strconv.FormatUint(n, 10), nil
}

// clearOutputOnly clears what the caller may not set.
func clearOutputOnly(p *crowdgatev1.Pool) {
	p.PoolId, p.TenantId, p.TolokaPoolId = "", "", ""
	p.Status, p.LastCloseReason = 0, 0
	p.CreateTime, p.LastStarted, p.LastStopped = nil, nil, nil
}

// activeProject returns the pool's project, which must not be archived.
func (s *Service) activeProject(ctx context.Context, tenantID, projectID string) (*crowdgatev1.Project, error) {
	prj, err := s.cfg.Projects.Get(ctx, tenantID, projectID)
	if err != nil {
		return nil, err
	}
	if prj.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		return nil, serviceerror.NewFailedPrecondition("project %s is archived", projectID)
	}
	return prj, nil
}

// CreatePool validates the pool, creates it (closed) in Toloka and stores it.
func (s *Service) CreatePool(ctx context.Context, req *crowdgatev1.CreatePoolRequest) (*crowdgatev1.CreatePoolResponse, error) {
	tenantID := tenant.FromContext(ctx)
	if req.GetPool() == nil {
		return nil, serviceerror.NewInvalidArgument("pool", "is required")
	}
	p := proto.Clone(req.GetPool()).(*crowdgatev1.Pool)
	clearOutputOnly(p)
	if p.GetProjectId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool.project_id", "is required")
	}
	prj, err := s.cfg.Projects.Get(ctx, tenantID, p.GetProjectId())
	if err != nil {
		return nil, err
	}
	// Validate everything before touching Toloka.
	tp, err := tolokaPool(p, prj, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	if prj.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		return nil, serviceerror.NewFailedPrecondition("project %s is archived: it takes no new pools", prj.GetProjectId())
	}
	account, err := s.cfg.Projects.Account(ctx, prj)
	if err != nil {
		return nil, err
	}
	created, err := account.CreatePool(ctx, tp)
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	p.PoolId = protostore.NewID("pool")
	p.TenantId = tenantID
	p.TolokaPoolId = created.ID
	applyState(p, created)
	p.CreateTime = timestamp(created.Created)
	if p.CreateTime == nil {
		p.CreateTime = timestamppb.New(s.cfg.Now())
	}
	if err := s.store.Create(ctx, tenantID, p.GetPoolId(), p, "", p.GetProjectId()); err != nil {
		s.cfg.Log.ErrorContext(ctx, "pool created in Toloka but not stored: it exists in Toloka without a Crowdgate record",
			"tenant_id", tenantID, "project_id", p.GetProjectId(), "toloka_pool_id", created.ID, "error", err.Error())
		return nil, err
	}
	if err := s.cfg.Redis.Set(ctx, s.tolokaKey(prj.GetEnvironment(), created.ID), tenantID+indexSep+p.GetPoolId(), 0).Err(); err != nil {
		return nil, unavailable(err)
	}
	s.cfg.Log.InfoContext(ctx, "pool created", "tenant_id", tenantID, "project_id", p.GetProjectId(),
		"pool_id", p.GetPoolId(), "toloka_pool_id", p.GetTolokaPoolId())
	return &crowdgatev1.CreatePoolResponse{Pool: p}, nil
}

// GetPool returns one pool with its status refreshed from Toloka.
func (s *Service) GetPool(ctx context.Context, req *crowdgatev1.GetPoolRequest) (*crowdgatev1.GetPoolResponse, error) {
	tenantID := tenant.FromContext(ctx)
	p, err := s.Get(ctx, tenantID, req.GetPoolId())
	if err != nil {
		return nil, err
	}
	if fresh, err := s.refresh(ctx, p); err != nil {
		// The stored state is still an answer; say why it may be stale.
		s.cfg.Log.WarnContext(ctx, "pool status not refreshed from Toloka", "tenant_id", tenantID, "pool_id", p.GetPoolId(), "error", err.Error())
	} else {
		p = fresh
	}
	return &crowdgatev1.GetPoolResponse{Pool: p}, nil
}

// refresh reads the pool's state from Toloka and stores it if it changed.
func (s *Service) refresh(ctx context.Context, p *crowdgatev1.Pool) (*crowdgatev1.Pool, error) {
	prj, err := s.cfg.Projects.Get(ctx, p.GetTenantId(), p.GetProjectId())
	if err != nil {
		return nil, err
	}
	account, err := s.cfg.Projects.Account(ctx, prj)
	if err != nil {
		return nil, err
	}
	return s.refreshWith(ctx, account, p)
}

func (s *Service) refreshWith(ctx context.Context, account *toloka.Account, p *crowdgatev1.Pool) (*crowdgatev1.Pool, error) {
	tp, err := account.GetPool(ctx, p.GetTolokaPoolId())
	if err != nil {
		return nil, err
	}
	p = proto.Clone(p).(*crowdgatev1.Pool)
	if applyState(p, tp) {
		if err := s.store.Put(ctx, p.GetTenantId(), p.GetPoolId(), p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ListPools lists a project's pools, newest first, as last seen.
func (s *Service) ListPools(ctx context.Context, req *crowdgatev1.ListPoolsRequest) (*crowdgatev1.ListPoolsResponse, error) {
	tenantID := tenant.FromContext(ctx)
	if req.GetProjectId() == "" {
		return nil, serviceerror.NewInvalidArgument("project_id", "is required")
	}
	if _, ok := crowdgatev1.PoolStatus_name[int32(req.GetStatus())]; !ok {
		return nil, serviceerror.NewInvalidArgument("status", "unknown pool status %d", req.GetStatus())
	}
	if _, err := s.cfg.Projects.Get(ctx, tenantID, req.GetProjectId()); err != nil {
		return nil, err
	}
	var keep func(*crowdgatev1.Pool) bool
	if st := req.GetStatus(); st != crowdgatev1.PoolStatus_POOL_STATUS_UNSPECIFIED {
		keep = func(p *crowdgatev1.Pool) bool { return p.GetStatus() == st }
	}
	items, next, err := s.store.List(ctx, tenantID, req.GetProjectId(), req.GetPageSize(), req.GetPageToken(), keep)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListPoolsResponse{Pools: items, NextPageToken: next}, nil
}

// PoolsOfProject returns every pool of a project, in any status.
func (s *Service) PoolsOfProject(ctx context.Context, tenantID, projectID string) ([]*crowdgatev1.Pool, error) {
	var all []*crowdgatev1.Pool
	token := ""
	for {
		items, next, err := s.store.List(ctx, tenantID, projectID, protostore.MaxPageSize, token, nil)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

// outputOnly are the pool fields a caller never sets; an update mask naming
// them is ignored for them (AIP-134).
var outputOnly = map[string]bool{
	"pool_id": true, "tenant_id": true, "toloka_pool_id": true, "status": true, "last_close_reason": true,
	"create_time": true, "last_started": true, "last_stopped": true,
}

// UpdatePool changes a closed pool; FAILED_PRECONDITION while it is open.
func (s *Service) UpdatePool(ctx context.Context, req *crowdgatev1.UpdatePoolRequest) (*crowdgatev1.UpdatePoolResponse, error) {
	tenantID := tenant.FromContext(ctx)
	if req.GetPool() == nil {
		return nil, serviceerror.NewInvalidArgument("pool", "is required")
	}
	if req.GetPool().GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool.pool_id", "is required")
	}
	stored, err := s.Get(ctx, tenantID, req.GetPool().GetPoolId())
	if err != nil {
		return nil, err
	}
	src := proto.Clone(req.GetPool()).(*crowdgatev1.Pool)
	if src.GetProjectId() != "" && src.GetProjectId() != stored.GetProjectId() {
		return nil, serviceerror.NewInvalidArgument("pool.project_id", "cannot be changed (the pool belongs to project %s)", stored.GetProjectId())
	}
	merged, err := merge(stored, src, req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	prj, err := s.activeProject(ctx, tenantID, stored.GetProjectId())
	if err != nil {
		return nil, err
	}
	tp, err := tolokaPool(merged, prj, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	account, err := s.cfg.Projects.Account(ctx, prj)
	if err != nil {
		return nil, err
	}
	// Seed 000: a pool is changed only while stopped. Ask Toloka, not the
	// stored status, which may be stale.
	current, err := account.GetPool(ctx, stored.GetTolokaPoolId())
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	if current.Status != toloka.PoolClosed {
		return nil, serviceerror.NewFailedPrecondition("pool %s is %s: close (stop) it before changing it", stored.GetPoolId(), current.Status)
	}
	updated, err := account.UpdatePool(ctx, stored.GetTolokaPoolId(), tp)
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	applyState(merged, updated)
	if err := s.store.Put(ctx, tenantID, merged.GetPoolId(), merged); err != nil {
		return nil, err
	}
	s.cfg.Log.InfoContext(ctx, "pool updated", "tenant_id", tenantID, "pool_id", merged.GetPoolId(),
		"toloka_pool_id", merged.GetTolokaPoolId(), "update_mask", strings.Join(req.GetUpdateMask().GetPaths(), ","))
	return &crowdgatev1.UpdatePoolResponse{Pool: merged}, nil
}

// merge returns stored with the fields of src named by paths (proto field
// paths, "mixer_config.real_tasks_count"); no paths replaces every settable
// field. Output-only fields and project_id are kept from stored.
func merge(stored, src *crowdgatev1.Pool, paths []string) (*crowdgatev1.Pool, error) {
	out := proto.Clone(stored).(*crowdgatev1.Pool)
	if len(paths) == 0 {
		out = proto.Clone(src).(*crowdgatev1.Pool)
		out.ProjectId = stored.GetProjectId()
		out.PoolId, out.TenantId, out.TolokaPoolId = stored.GetPoolId(), stored.GetTenantId(), stored.GetTolokaPoolId()
		out.Status, out.LastCloseReason = stored.GetStatus(), stored.GetLastCloseReason()
		out.CreateTime, out.LastStarted, out.LastStopped = stored.GetCreateTime(), stored.GetLastStarted(), stored.GetLastStopped()
		return out, nil
	}
	for _, path := range paths {
		parts := strings.Split(path, ".")
		if outputOnly[parts[0]] || parts[0] == "project_id" {
			continue
		}
		if err := copyPath(out.ProtoReflect(), src.ProtoReflect(), parts, path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// copyPath sets the field at parts in dst to its value in src (clearing it
// when src does not have it).
func copyPath(dst, src protoreflect.Message, parts []string, path string) error {
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(parts[0]))
	if fd == nil {
		return serviceerror.NewInvalidArgument("update_mask", "%q names no field of Pool", path)
	}
	if len(parts) == 1 {
		if src.Has(fd) {
			dst.Set(fd, src.Get(fd))
		} else {
			dst.Clear(fd)
		}
		return nil
	}
	if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
		return serviceerror.NewInvalidArgument("update_mask", "%q: %s has no subfields", path, fd.Name())
	}
	if !src.Has(fd) && !dst.Has(fd) {
		return nil
	}
	return copyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), parts[1:], path)
}

// OpenPool opens the pool and waits for Toloka's operation.
func (s *Service) OpenPool(ctx context.Context, req *crowdgatev1.OpenPoolRequest) (*crowdgatev1.OpenPoolResponse, error) {
	p, err := s.transition(ctx, tenant.FromContext(ctx), req.GetPoolId(), "open")
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.OpenPoolResponse{Pool: p}, nil
}

// ClosePool closes the pool and waits for Toloka's operation.
func (s *Service) ClosePool(ctx context.Context, req *crowdgatev1.ClosePoolRequest) (*crowdgatev1.ClosePoolResponse, error) {
	p, err := s.Close(ctx, tenant.FromContext(ctx), req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ClosePoolResponse{Pool: p}, nil
}

// ArchivePool archives a closed pool and waits for Toloka's operation.
func (s *Service) ArchivePool(ctx context.Context, req *crowdgatev1.ArchivePoolRequest) (*crowdgatev1.ArchivePoolResponse, error) {
	p, err := s.Archive(ctx, tenant.FromContext(ctx), req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ArchivePoolResponse{Pool: p}, nil
}

// Close closes a tenant's pool, waiting for Toloka's operation.
func (s *Service) Close(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return s.transition(ctx, tenantID, poolID, "close")
}

// Archive archives a tenant's closed pool, waiting for Toloka's operation.
func (s *Service) Archive(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return s.transition(ctx, tenantID, poolID, "archive")
}

// transition starts Toloka's open, close or archive operation, waits for
// it, and returns the refreshed pool.
func (s *Service) transition(ctx context.Context, tenantID, poolID, action string) (*crowdgatev1.Pool, error) {
	if poolID == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	p, err := s.Get(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	prj, err := s.cfg.Projects.Get(ctx, tenantID, p.GetProjectId())
	if err != nil {
		return nil, err
	}
	account, err := s.cfg.Projects.Account(ctx, prj)
	if err != nil {
		return nil, err
	}
	var op *toloka.Operation
	switch action {
	case "open":
		if prj.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
			return nil, serviceerror.NewFailedPrecondition("project %s is archived", prj.GetProjectId())
		}
		op, err = account.OpenPool(ctx, p.GetTolokaPoolId())
	case "close":
		op, err = account.ClosePool(ctx, p.GetTolokaPoolId())
	case "archive":
		current, gerr := account.GetPool(ctx, p.GetTolokaPoolId())
		if gerr != nil {
			return nil, project.TolokaError("pool", gerr)
		}
		if current.Status == toloka.PoolOpen {
			return nil, serviceerror.NewFailedPrecondition("pool %s is OPEN: close it before archiving it", poolID)
		}
		op, err = account.ArchivePool(ctx, p.GetTolokaPoolId())
	}
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	if op != nil {
		if _, err := account.WaitOperation(ctx, op.ID); err != nil {
			return nil, err
		}
	}
	fresh, err := s.refreshWith(ctx, account, p)
	if err != nil {
		return nil, err
	}
	s.cfg.Log.InfoContext(ctx, "pool "+action+" done", "tenant_id", tenantID, "pool_id", poolID,
		"toloka_pool_id", p.GetTolokaPoolId(), "status", fresh.GetStatus().String())
	return fresh, nil
}

// MaxCountedAwaitingReview bounds how many assignments awaiting review
// UnfinishedWork counts before it says "at least".
const MaxCountedAwaitingReview = 10000

// assignmentLister is the list call UnfinishedWork needs from the Toloka
// client (GET /assignments?pool_id=&status=SUBMITTED).
type assignmentLister interface {
	ListAssignments(ctx context.Context, opts toloka.ListOptions) (*toloka.List[toloka.Assignment], error)
}

// UnfinishedWork reports the pool's assignments awaiting review in Toloka
// (project.WorkChecker).
func (s *Service) UnfinishedWork(ctx context.Context, tenantID string, p *crowdgatev1.Pool) ([]string, error) {
	prj, err := s.cfg.Projects.Get(ctx, tenantID, p.GetProjectId())
	if err != nil {
		return nil, err
	}
	account, err := s.cfg.Projects.Account(ctx, prj)
	if err != nil {
		return nil, err
	}
	return awaitingReview(ctx, account, p.GetTolokaPoolId())
}

// awaitingReview counts a Toloka pool's SUBMITTED assignments, page by page
// (sort=id, id_gt=<last id>), up to MaxCountedAwaitingReview.
func awaitingReview(ctx context.Context, lister assignmentLister, tolokaPoolID string) ([]string, error) {
	opts := toloka.ListOptions{Limit: 1000, Sort: "id", Status: string(toloka.AssignmentSubmitted), Filters: map[string][]string{"pool_id": {tolokaPoolID}}}
	n := 0
	for {
		page, err := lister.ListAssignments(ctx, opts)
		if err != nil {
			return nil, project.TolokaError("pool", err)
		}
		n += len(page.Items)
		if !page.HasMore || len(page.Items) == 0 {
			break
		}
		if n >= MaxCountedAwaitingReview {
			return []string{fmt.Sprintf("at least %d assignments awaiting review", n)}, nil
		}
		opts.IDGt = page.Items[len(page.Items)-1].ID
	}
	switch n {
	case 0:
		return nil, nil
	case 1:
		return []string{"1 assignment awaiting review"}, nil
	}
	return []string{fmt.Sprintf("%d assignments awaiting review", n)}, nil
}

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &serviceerror.Unavailable{Message: "datastore unavailable: " + err.Error()}
}

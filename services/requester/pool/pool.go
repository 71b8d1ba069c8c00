// Package pool is the requester's step between a project and its work:
// pools of an EXTERNAL project, created, changed, opened, closed and
// archived in Toloka.
//
// Every field of seed 003 is validated with Toloka's documented ranges
// before Toloka is called; a bad value is INVALID_ARGUMENT naming its field
// ("pool.mixer_config.force_last_assignment_delay_seconds"). A pool's filter
// sent to Toloka is the project's Toloker requirements ANDed with the pool's
// own filter. Records live in the catalog, which also indexes them by
// Toloka pool id so a landing finds the pool of an assignment.
//
// Transitions moves a pool between Toloka's states and waits for Toloka's
// operation; ArchivePool goes through the archive use case, which refuses
// while the pool has unfinished work.
package pool

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/fieldmask"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/project"
)

// Archiver archives a pool once nothing is left to finish in it
// (*archive.Service).
type Archiver interface {
	ArchivePool(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error)
}

// Service implements crowdgatev1.PoolServiceServer.
type Service struct {
	crowdgatev1.UnimplementedPoolServiceServer
	catalog     *catalog.Catalog
	transitions *Transitions
	archiver    Archiver
	now         func() time.Time
	log         *slog.Logger
}

// NewService returns the pool service. transitions moves pools in Toloka;
// archiver archives them. now decides whether will_expire is in the future
// (time.Now when nil).
func NewService(cat *catalog.Catalog, transitions *Transitions, archiver Archiver, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{catalog: cat, transitions: transitions, archiver: archiver, now: now, log: log}
}

// clearOutputOnly clears what the caller may not set.
func clearOutputOnly(p *crowdgatev1.Pool) {
	p.PoolId, p.TenantId, p.TolokaPoolId = "", "", ""
	p.Status, p.LastCloseReason = 0, 0
	p.CreateTime, p.LastStarted, p.LastStopped = nil, nil, nil
}

// CreatePool validates the pool, creates it (closed) in Toloka and stores it.
func (s *Service) CreatePool(ctx context.Context, req *crowdgatev1.CreatePoolRequest) (*crowdgatev1.CreatePoolResponse, error) {
	tenantID := tenant.FromContext(ctx)
	if req.GetPool() == nil {
		return nil, serviceerror.NewInvalidArgument("pool", "is required")
	}
	p := proto.Clone(req.GetPool()).(*crowdgatev1.Pool)
	defaultPricingTo(p)
	clearOutputOnly(p)
	if p.GetProjectId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool.project_id", "is required")
	}
	prj, err := s.catalog.Project(ctx, tenantID, p.GetProjectId())
	if err != nil {
		return nil, err
	}
	// Validate everything before touching Toloka.
	tp, tt, err := s.validate(ctx, tenantID, p, prj, nil)
	if err != nil {
		return nil, err
	}
	if prj.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		return nil, serviceerror.NewFailedPrecondition("project %s is archived: it takes no new pools", prj.GetProjectId())
	}
	account, err := s.catalog.Account(ctx, tenantID, prj.GetCredentialId())
	if err != nil {
		return nil, err
	}
	var created *toloka.Pool
	if tt != nil {
		ct, cerr := account.CreateTraining(ctx, tt)
		if cerr != nil {
			return nil, project.TolokaError("pool", cerr)
		}
		created = ct.State()
	} else if created, err = account.CreatePool(ctx, tp); err != nil {
		return nil, project.TolokaError("pool", err)
	}
	p.PoolId = storage.NewID("pool")
	p.TenantId = tenantID
	p.TolokaPoolId = created.ID
	applyState(p, created)
	p.CreateTime = timestamp(created.Created)
	if p.CreateTime == nil {
		p.CreateTime = timestamppb.New(s.now())
	}
	if err := s.catalog.CreatePool(ctx, p, prj.GetEnvironment()); err != nil {
		s.log.ErrorContext(ctx, "pool created in Toloka but not stored: it exists in Toloka without a Crowdgate record",
			"tenant_id", tenantID, "project_id", p.GetProjectId(), "toloka_pool_id", created.ID, "error", err.Error())
		return nil, err
	}
	s.log.InfoContext(ctx, "pool created", "tenant_id", tenantID, "project_id", p.GetProjectId(),
		"pool_id", p.GetPoolId(), "toloka_pool_id", p.GetTolokaPoolId())
	return &crowdgatev1.CreatePoolResponse{Pool: p}, nil
}

// GetPool returns one pool with its status refreshed from Toloka.
func (s *Service) GetPool(ctx context.Context, req *crowdgatev1.GetPoolRequest) (*crowdgatev1.GetPoolResponse, error) {
	if req.GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	tenantID := tenant.FromContext(ctx)
	r, err := s.catalog.ResolvePool(ctx, tenantID, req.GetPoolId())
	if err != nil {
		return nil, err
	}
	p := r.Pool
	if fresh, err := s.transitions.refresh(ctx, r); err != nil {
		// The stored state is still an answer; say why it may be stale.
		s.log.WarnContext(ctx, "pool status not refreshed from Toloka", "tenant_id", tenantID, "pool_id", p.GetPoolId(), "error", err.Error())
	} else {
		p = fresh
	}
	return &crowdgatev1.GetPoolResponse{Pool: p}, nil
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
	page, err := paging.Parse("pools/"+req.GetProjectId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	if _, err := s.catalog.Project(ctx, tenantID, req.GetProjectId()); err != nil {
		return nil, err
	}
	var keep func(*crowdgatev1.Pool) bool
	if st := req.GetStatus(); st != crowdgatev1.PoolStatus_POOL_STATUS_UNSPECIFIED {
		keep = func(p *crowdgatev1.Pool) bool { return p.GetStatus() == st }
	}
	items, next, err := s.catalog.ListPools(ctx, tenantID, req.GetProjectId(), page, keep)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListPoolsResponse{Pools: items, NextPageToken: next}, nil
}

// validate checks p, a pool of prj, and returns what Toloka gets: a pool,
// or a training for a TRAINING pool. A training_requirement naming a
// Crowdgate pool is sent as that training's Toloka id.
//
// stored is the pool as stored, for an update (nil for a new pool): a
// value stored before a rule that now refuses it (Toloka took it then)
// stays as it is while the update leaves it unchanged, so an update of
// another field never fails on a field its caller did not send.
func (s *Service) validate(ctx context.Context, tenantID string, p *crowdgatev1.Pool, prj *crowdgatev1.Project, stored *crowdgatev1.Pool) (*toloka.Pool, *toloka.Training, error) {
	if _, ok := crowdgatev1.PoolType_name[int32(p.GetType())]; !ok {
		return nil, nil, serviceerror.NewInvalidArgument("pool.type", "must be REGULAR or TRAINING, got %d", p.GetType())
	}
	if isTraining(p) {
		tt, err := tolokaTraining(p, prj, stored)
		return nil, tt, err
	}
	if p.GetTraining() != nil {
		return nil, nil, serviceerror.NewInvalidArgument("pool.training", "is for TRAINING pools only (set type POOL_TYPE_TRAINING)")
	}
	tp, err := tolokaPool(p, prj, s.now(), stored)
	if err != nil {
		return nil, nil, err
	}
	if tr := tp.QualityControl; tr != nil && tr.TrainingRequirement != nil && strings.HasPrefix(tr.TrainingRequirement.TrainingPoolID, "pool_") {
		const field = "pool.quality_control.training_requirement.training_pool_id"
		training, err := s.catalog.Pool(ctx, tenantID, tr.TrainingRequirement.TrainingPoolID)
		if err != nil {
			return nil, nil, serviceerror.NewInvalidArgument(field, "%s is not a pool of this tenant", tr.TrainingRequirement.TrainingPoolID)
		}
		if !isTraining(training) || training.GetProjectId() != prj.GetProjectId() {
			return nil, nil, serviceerror.NewInvalidArgument(field, "%s is not a TRAINING pool of project %s", training.GetPoolId(), prj.GetProjectId())
		}
		tr.TrainingRequirement.TrainingPoolID = training.GetTolokaPoolId()
	}
	return tp, nil, nil
}

// setPriority changes only a pool's priority, open or closed (Toloka's
// PATCH /pools/{id}).
func (s *Service) setPriority(ctx context.Context, r *catalog.Resolved, merged *crowdgatev1.Pool) (*crowdgatev1.UpdatePoolResponse, error) {
	const field = "pool.priority"
	if isTraining(merged) {
		return nil, serviceerror.NewInvalidArgument(field, "is not a field of TRAINING pools")
	}
	if err := between(field, int64(merged.GetPriority()), MinPriority, MaxPriority); err != nil {
		return nil, err
	}
	updated, err := r.Account.SetPoolPriority(ctx, merged.GetTolokaPoolId(), int(merged.GetPriority()))
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	priority := merged.GetPriority()
	merged, err = s.transitions.StoreUpdate(ctx, merged.GetTenantId(), merged.GetPoolId(), updated, func(cur *crowdgatev1.Pool) *crowdgatev1.Pool {
		cur.Priority = &priority // Toloka's PATCH changed this field alone
		return cur
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "pool priority set", "tenant_id", merged.GetTenantId(), "pool_id", merged.GetPoolId(), "priority", merged.GetPriority())
	return &crowdgatev1.UpdatePoolResponse{Pool: merged}, nil
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
	stored, err := s.catalog.Pool(ctx, tenantID, req.GetPool().GetPoolId())
	if err != nil {
		return nil, err
	}
	src := proto.Clone(req.GetPool()).(*crowdgatev1.Pool)
	defaultPricingTo(src)
	if src.GetProjectId() != "" && src.GetProjectId() != stored.GetProjectId() {
		return nil, serviceerror.NewInvalidArgument("pool.project_id", "cannot be changed (the pool belongs to project %s)", stored.GetProjectId())
	}
	merged, err := merge(stored, src, req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	r, err := s.catalog.Resolve(ctx, stored)
	if err != nil {
		return nil, err
	}
	prj, account := r.Project, r.Account
	if prj.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		return nil, serviceerror.NewFailedPrecondition("project %s is archived", prj.GetProjectId())
	}
	if merged.GetType() == crowdgatev1.PoolType_POOL_TYPE_UNSPECIFIED {
		merged.Type = stored.GetType()
	}
	if isTraining(merged) != isTraining(stored) {
		return nil, serviceerror.NewInvalidArgument("pool.type", "cannot be changed (the pool is %s)", stored.GetType())
	}
	if paths := req.GetUpdateMask().GetPaths(); len(paths) == 1 && paths[0] == "priority" {
		return s.setPriority(ctx, r, merged)
	}
	tp, tt, err := s.validate(ctx, tenantID, merged, prj, stored)
	if err != nil {
		return nil, err
	}
	// Seed 000: a pool is changed only while stopped. Ask Toloka, not the
	// stored status, which may be stale; an open pool is stopped with
	// Toloka's close-for-update, changed and opened again.
	rem := remoteOf(account, stored)
	current, err := rem.get(ctx)
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	reopen := false
	switch current.Status {
	case toloka.PoolClosed:
	case toloka.PoolOpen:
		if _, err := s.transitions.CloseForUpdate(ctx, tenantID, stored.GetPoolId()); err != nil {
			return nil, err
		}
		reopen = true
	default:
		return nil, serviceerror.NewFailedPrecondition("pool %s is %s: it cannot be changed", stored.GetPoolId(), current.Status)
	}
	var updated *toloka.Pool
	if tt != nil {
		ut, uerr := account.UpdateTraining(ctx, stored.GetTolokaPoolId(), tt)
		if uerr == nil {
			updated = ut.State()
		}
		err = uerr
	} else {
		updated, err = account.UpdatePool(ctx, stored.GetTolokaPoolId(), tp)
	}
	if err != nil {
		if reopen {
			// Leave the pool as it was found: open, unchanged.
			if _, oerr := s.transitions.Open(context.WithoutCancel(ctx), tenantID, stored.GetPoolId()); oerr != nil {
				s.log.WarnContext(ctx, "pool closed for update not reopened after a failed update", "tenant_id", tenantID, "pool_id", stored.GetPoolId(), "error", oerr.Error())
			}
		}
		return nil, project.TolokaError("pool", err)
	}
	// Toloka now has every setting of merged (a PUT of the whole pool);
	// the state is the stored one with Toloka's answer applied.
	settings := merged
	merged, err = s.transitions.StoreUpdate(ctx, tenantID, stored.GetPoolId(), updated, func(cur *crowdgatev1.Pool) *crowdgatev1.Pool {
		p, _ := merge(cur, settings, nil) // every setting; the output-only fields kept (no error without paths)
		return p
	})
	if err != nil {
		return nil, err
	}
	if reopen {
		opened, err := s.transitions.Open(ctx, tenantID, merged.GetPoolId())
		if err != nil {
			return nil, err
		}
		merged = opened
	}
	s.log.InfoContext(ctx, "pool updated", "tenant_id", tenantID, "pool_id", merged.GetPoolId(),
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
		if err := fieldmask.Copy(out.ProtoReflect(), src.ProtoReflect(), path); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OpenPool opens the pool and waits for Toloka's operation.
func (s *Service) OpenPool(ctx context.Context, req *crowdgatev1.OpenPoolRequest) (*crowdgatev1.OpenPoolResponse, error) {
	p, err := s.transitions.Open(ctx, tenant.FromContext(ctx), req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.OpenPoolResponse{Pool: p}, nil
}

// ClosePool closes the pool and waits for Toloka's operation.
func (s *Service) ClosePool(ctx context.Context, req *crowdgatev1.ClosePoolRequest) (*crowdgatev1.ClosePoolResponse, error) {
	p, err := s.transitions.Close(ctx, tenant.FromContext(ctx), req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ClosePoolResponse{Pool: p}, nil
}

// ArchivePool archives a closed pool with nothing left to finish and waits
// for Toloka's operation.
func (s *Service) ArchivePool(ctx context.Context, req *crowdgatev1.ArchivePoolRequest) (*crowdgatev1.ArchivePoolResponse, error) {
	if req.GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	p, err := s.archiver.ArchivePool(ctx, tenant.FromContext(ctx), req.GetPoolId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ArchivePoolResponse{Pool: p}, nil
}

// Package archive is the requester's last step: archiving a finished
// project, or one pool, in Toloka.
//
// Archiving is refused while anything in the pools is unfinished, because
// work archived too early strands a Toloker's pay: Toloka refuses submits
// to an archived pool ("pool is ARCHIVED"), so a Toloker still on the
// platform, or a submit still in the outbox, would never be paid. Every
// source of unfinished work is a constructor argument of New, so a service
// built without one does not compile:
//
//   - live sessions (Tolokers still on the platform),
//   - submits not yet delivered to Toloka, and dead ones,
//   - assignments awaiting the requester's review in Toloka.
//
// A project is checked, its pools are closed (no new Tolokers), it is
// checked again (a Toloker may have started meanwhile; the pools then stay
// closed), and then the pools and the project are archived. A refusal is
// FAILED_PRECONDITION saying, pool by pool, what is left ("1 live
// session").
//
// The last check and the archive are one fenced step per pool: the check
// fences the pool and counts its live sessions at once (LiveSessions.Fence),
// so a Toloker whose landing asked Toloka before the archive, and stores
// its session after, is either counted (the archive is refused) or refused
// (the landing is closed); never sent to a pool about to be archived. A
// pool archived stays fenced for good; a refusal or an error lifts the
// fences of the pools not archived, and a fence an archive that died left
// expires after FenceTTL.
package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/requester/project"
)

// LiveSessions counts a pool's active sessions and stops new ones
// (*session.Service).
type LiveSessions interface {
	// LiveCount counts a pool's active sessions.
	LiveCount(ctx context.Context, tenantID, poolID string) (int64, error)
	// Fence stops sessions from starting in a pool and counts its active
	// ones, in one step; the fence is holder's and expires after ttl.
	Fence(ctx context.Context, tenantID, poolID, holder string, ttl time.Duration) (int64, error)
	// Unfence lets sessions start again in a pool holder fenced.
	Unfence(ctx context.Context, tenantID, poolID, holder string) error
	// LeaveFenced keeps sessions out of a pool holder fenced for ttl,
	// handing the fence to the next archive of the pool.
	LeaveFenced(ctx context.Context, tenantID, poolID, holder string, ttl time.Duration) error
	// Seal fences an archived pool for good.
	Seal(ctx context.Context, tenantID, poolID string) error
}

// PendingSubmits counts a pool's submits not yet delivered and dead
// (*submission.Service).
type PendingSubmits interface {
	PendingCount(ctx context.Context, tenantID, poolID string) (queued, dead int64, err error)
}

// AwaitingReview counts a pool's assignments awaiting review in Toloka
// (*review.Service). complete is false when it stopped counting early;
// the count is then a lower bound.
type AwaitingReview interface {
	CountAwaitingReview(ctx context.Context, r *catalog.Resolved) (n int, complete bool, err error)
}

// Pools moves pools between Toloka's states (*pool.Transitions).
type Pools interface {
	Close(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error)
	Archive(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error)
}

// Service archives projects and pools.
type Service struct {
	catalog  *catalog.Catalog
	pools    Pools
	sessions LiveSessions
	submits  PendingSubmits
	review   AwaitingReview
	events   *events.Log
	now      func() time.Time
	log      *slog.Logger
}

// New returns the archive use case over the catalog and pool transitions,
// with every source of unfinished work, recording project.archived in evs.
// None may be nil.
func New(cat *catalog.Catalog, pools Pools, sessions LiveSessions, submits PendingSubmits, review AwaitingReview, evs *events.Log, now func() time.Time, log *slog.Logger) (*Service, error) {
	if cat == nil || pools == nil || sessions == nil || submits == nil || review == nil || evs == nil {
		return nil, errors.New("archive: the catalog, the pools, every source of unfinished work and the event log are required")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{catalog: cat, pools: pools, sessions: sessions, submits: submits, review: review, events: evs, now: now, log: log}, nil
}

// ArchiveProject closes and archives every pool of a tenant's project, then
// the project. It is refused, saying what is left, while any pool has
// unfinished work; a refusal after the pools closed leaves them closed.
// Archiving an archived project returns it unchanged.
func (s *Service) ArchiveProject(ctx context.Context, tenantID, projectID string) (*crowdgatev1.Project, error) {
	r, err := s.catalog.ResolveProject(ctx, tenantID, projectID)
	if err != nil {
		return nil, err
	}
	p := r.Project
	if p.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		// Archived already: by this call sent before, which may have
		// stopped after storing the project (a Redis error, a replica
		// killed). Its last steps are done again: both are idempotent,
		// and the event is recorded once by its id (within the log's
		// window for repeats: a call days later records nothing).
		if s.now().Sub(p.GetArchiveTime().AsTime()) < s.events.RepeatWindow() {
			s.recordArchived(ctx, tenantID, p)
		}
		if err := s.catalog.ReleaseCredential(ctx, tenantID, p.GetCredentialId(), p.GetProjectId()); err != nil {
			return nil, err
		}
		return p, nil
	}
	pools, err := s.catalog.PoolsOfProject(ctx, tenantID, projectID)
	if err != nil {
		return nil, err
	}
	if err := s.refuseUnfinished(ctx, "project "+projectID, r, pools, s.liveCount(tenantID)); err != nil {
		return nil, err
	}
	// Trainings last: Toloka archives a training only once the pools
	// linked to it are archived.
	slices.SortStableFunc(pools, func(a, b *crowdgatev1.Pool) int { return trainingOrder(a) - trainingOrder(b) })
	for i, pl := range pools {
		if archived(pl) {
			continue
		}
		if pools[i], err = s.pools.Close(ctx, tenantID, pl.GetPoolId()); err != nil {
			return nil, fmt.Errorf("close pool %s: %w", pl.GetPoolId(), err)
		}
	}
	if err := s.archivePools(ctx, "project "+projectID, r, pools); err != nil {
		return nil, err
	}
	op, err := r.Account.ArchiveProject(ctx, p.GetTolokaProjectId())
	if err != nil {
		return nil, project.TolokaError("project", err)
	}
	if op != nil {
		if _, err := r.Account.WaitOperation(ctx, op.ID); err != nil {
			return nil, project.TolokaError("project", err)
		}
	}
	p.Status = crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED
	p.ArchiveTime = timestamppb.New(s.now())
	if err := s.catalog.PutProject(ctx, p); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "project archived", "tenant_id", tenantID, "project_id", p.GetProjectId(),
		"toloka_project_id", p.GetTolokaProjectId(), "pools", len(pools))
	s.recordArchived(ctx, tenantID, p)
	if err := s.catalog.ReleaseCredential(ctx, tenantID, p.GetCredentialId(), p.GetProjectId()); err != nil {
		return nil, err
	}
	return p, nil
}

// recordArchived appends the project.archived event of the tenant's
// archived project p. The project is archived whatever happens here: a
// failure is logged, and the call sent again (its answer was an error, or
// lost) records the event.
func (s *Service) recordArchived(ctx context.Context, tenantID string, p *crowdgatev1.Project) {
	ev := s.events.New(tenantID, events.TypeProjectArchived, "projects/"+p.GetProjectId())
	ev.CreateTime = p.GetArchiveTime()
	ev.Data = &crowdgatev1.Event_Project{Project: p}
	if err := s.events.Append(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "archive: the project.archived event was not recorded", "tenant_id", tenantID,
			"project_id", p.GetProjectId(), "error", err.Error())
	}
}

// ArchivePool archives a tenant's closed pool once it has no unfinished
// work. Archiving an archived pool returns it unchanged.
func (s *Service) ArchivePool(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	r, err := s.catalog.ResolvePool(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	if archived(r.Pool) {
		// Sealed again (at no cost): repairs a seal that failed.
		if err := s.sessions.Seal(ctx, tenantID, poolID); err != nil {
			return nil, err
		}
		return r.Pool, nil
	}
	if err := s.refuseLinkedTraining(ctx, r.Pool); err != nil {
		return nil, err
	}
	pools := []*crowdgatev1.Pool{r.Pool}
	if err := s.refuseUnfinished(ctx, "pool "+poolID, r, pools, s.liveCount(tenantID)); err != nil {
		return nil, err
	}
	if err := s.archivePools(ctx, "pool "+poolID, r, pools); err != nil {
		return nil, err
	}
	return pools[0], nil
}

// FenceTTL bounds how long the fence of an archive that stopped midway (its
// replica killed, or Toloka's answer about the archive unknown) keeps new
// sessions out of a pool it did not archive. It outlasts one pool's
// archive in Toloka (the client waits at most 10 minutes for the
// operation); the fence is renewed before each pool's.
const FenceTTL = 15 * time.Minute

// archivePools archives the unarchived ones of pools (of r's project) in
// Toloka, replacing them in pools, once none has unfinished work: each is
// fenced first (its live sessions counted in the same step, and none
// starting after), every source of unfinished work is asked, and each pool
// is archived with its fence renewed (and its live sessions counted again)
// just before, then sealed. A refusal or an error lifts the fences of the
// pools not archived, except a pool whose archive in Toloka failed (Toloka
// may have made it, or may yet): its fence stays up for FenceTTL, free for
// the next archive to take over.
//
// Once the pools are fenced it runs to the end even if the caller goes
// away: stopped between Toloka's archive and the seal, it would leave an
// archived pool open to landings once the fence expired.
func (s *Service) archivePools(ctx context.Context, what string, r *catalog.Resolved, pools []*crowdgatev1.Pool) error {
	tenantID := r.Project.GetTenantId()
	// holder names this archive's fences; live holds the fenced pools to
	// unfence unless archived, with their live sessions.
	holder, live := storage.NewID("archive"), map[string]int64{}
	defer func() {
		for poolID := range live {
			if err := s.sessions.Unfence(context.WithoutCancel(ctx), tenantID, poolID, holder); err != nil {
				s.log.WarnContext(ctx, "archive: lifting a pool's fence failed; it expires by itself", "tenant_id", tenantID,
					"pool_id", poolID, "expires_in", FenceTTL, "error", err.Error())
			}
		}
	}()
	for _, pl := range pools {
		if pl.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
			// Refused before the fence: an open pool's Tolokers keep
			// landing.
			return serviceerror.NewFailedPrecondition("pool %s is OPEN: close it before archiving it", pl.GetPoolId())
		}
	}
	for _, pl := range pools {
		if archived(pl) {
			continue
		}
		// Listed before the call: a fence set whose answer is lost (a
		// cancelled call, a dropped reply) is lifted too (Unfence lifts
		// only this holder's).
		live[pl.GetPoolId()] = 0
		n, err := s.sessions.Fence(ctx, tenantID, pl.GetPoolId(), holder, FenceTTL)
		if err != nil {
			return fmt.Errorf("fence pool %s: %w", pl.GetPoolId(), err)
		}
		live[pl.GetPoolId()] = n
	}
	ctx = context.WithoutCancel(ctx)
	fenced := func(_ context.Context, poolID string) (int64, error) { return live[poolID], nil }
	if err := s.refuseUnfinished(ctx, what, r, pools, fenced); err != nil {
		return err
	}
	for i, pl := range pools {
		if archived(pl) {
			continue
		}
		poolID := pl.GetPoolId()
		// Renewed: the checks may have taken a while. A session counted now
		// would come from a fence lost (expired, or a Redis failover).
		n, err := s.sessions.Fence(ctx, tenantID, poolID, holder, FenceTTL)
		if err != nil {
			return fmt.Errorf("fence pool %s: %w", poolID, err)
		}
		if n > 0 {
			live[poolID] = n
			return s.refuseUnfinished(ctx, what, r, []*crowdgatev1.Pool{pl}, fenced)
		}
		got, err := s.pools.Archive(ctx, tenantID, poolID)
		if errors.Is(err, pool.ErrNotArchived) {
			// Toloka surely did not archive it: its fence is lifted with
			// the others' (or stays unsettled, if this archive took it over).
			return fmt.Errorf("archive pool %s: %w", poolID, err)
		}
		if err != nil {
			// Toloka may have archived the pool, or may yet (an answer
			// lost, an operation still running): the fence stays up, free
			// for the next archive of the pool to take over.
			delete(live, poolID)
			if lerr := s.sessions.LeaveFenced(ctx, tenantID, poolID, holder, FenceTTL); lerr != nil {
				s.log.WarnContext(ctx, "archive: handing over a pool's fence failed", "pool_id", poolID, "error", lerr.Error())
			}
			s.log.WarnContext(ctx, "archive: archiving a pool failed; it stays fenced until it is archived or its fence expires",
				"tenant_id", tenantID, "pool_id", poolID, "expires_in", FenceTTL, "error", err.Error())
			return fmt.Errorf("archive pool %s: %w", poolID, err)
		}
		pools[i] = got
		delete(live, poolID) // archived: its fence is never lifted
		if err := s.sessions.Seal(ctx, tenantID, poolID); err != nil {
			// The pool is archived in the catalog, which refuses new
			// landings; the fence keeps out those that read it before
			// until it expires, and ArchivePool seals it again.
			s.log.ErrorContext(ctx, "archive: sealing an archived pool's fence failed", "tenant_id", tenantID,
				"pool_id", poolID, "error", err.Error())
		}
	}
	return nil
}

// liveCount counts a tenant's pool's live sessions without fencing it.
func (s *Service) liveCount(tenantID string) func(context.Context, string) (int64, error) {
	return func(ctx context.Context, poolID string) (int64, error) {
		return s.sessions.LiveCount(ctx, tenantID, poolID)
	}
}

// trainingOrder is 1 for a TRAINING pool, 0 for another.
func trainingOrder(p *crowdgatev1.Pool) int {
	if p.GetType() == crowdgatev1.PoolType_POOL_TYPE_TRAINING {
		return 1
	}
	return 0
}

// refuseLinkedTraining refuses, before any fence or call to Toloka, the
// archive of a TRAINING pool that pools of its project not archived link
// to (quality_control.training_requirement.training_pool_id, by Crowdgate
// or Toloka id): Toloka refuses it (409 UNARCHIVED_POOLS_CONFLICT,
// "Archive needs it closed and its linked pools archived").
func (s *Service) refuseLinkedTraining(ctx context.Context, training *crowdgatev1.Pool) error {
	if trainingOrder(training) == 0 {
		return nil
	}
	pools, err := s.catalog.PoolsOfProject(ctx, training.GetTenantId(), training.GetProjectId())
	if err != nil {
		return err
	}
	var linked []string
	for _, pl := range pools {
		id := pl.GetQualityControl().GetTrainingRequirement().GetTrainingPoolId()
		if archived(pl) || id == "" || (id != training.GetPoolId() && id != training.GetTolokaPoolId()) {
			continue
		}
		linked = append(linked, pl.GetPoolId())
	}
	if len(linked) == 0 {
		return nil
	}
	slices.Sort(linked)
	return serviceerror.NewFailedPrecondition("pool %s is a training that pools not archived require (quality_control.training_requirement): %s; archive them first",
		training.GetPoolId(), strings.Join(linked, ", "))
}

func archived(p *crowdgatev1.Pool) bool {
	return p.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED
}

// refuseUnfinished asks every source about every unarchived pool, live
// sessions by live, and returns a FailedPrecondition listing what is left,
// or nil. r resolves the pools' project and account.
func (s *Service) refuseUnfinished(ctx context.Context, what string, r *catalog.Resolved, pools []*crowdgatev1.Pool, live func(ctx context.Context, poolID string) (int64, error)) error {
	var left []string
	for _, pl := range pools {
		if archived(pl) {
			continue
		}
		items, err := s.unfinished(ctx, &catalog.Resolved{Pool: pl, Project: r.Project, Account: r.Account}, live)
		if err != nil {
			return fmt.Errorf("check unfinished work of pool %s: %w", pl.GetPoolId(), err)
		}
		if len(items) > 0 {
			left = append(left, fmt.Sprintf("pool %s (Toloka pool %s): %s", pl.GetPoolId(), pl.GetTolokaPoolId(), strings.Join(items, ", ")))
		}
	}
	if len(left) == 0 {
		return nil
	}
	return serviceerror.NewFailedPrecondition("%s still has unfinished work; finish it before archiving: %s",
		what, strings.Join(left, "; "))
}

// unfinished lists one pool's unfinished work in words: "1 live session",
// "2 submits not yet delivered", "1 dead submit", "3 assignments awaiting
// review".
func (s *Service) unfinished(ctx context.Context, r *catalog.Resolved, liveCount func(ctx context.Context, poolID string) (int64, error)) ([]string, error) {
	tenantID, poolID := r.Pool.GetTenantId(), r.Pool.GetPoolId()
	var items []string
	live, err := liveCount(ctx, poolID)
	if err != nil {
		return nil, err
	}
	if live > 0 {
		items = append(items, plural(live, "live session", "live sessions"))
	}
	queued, dead, err := s.submits.PendingCount(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	if queued > 0 {
		items = append(items, plural(queued, "submit", "submits")+" not yet delivered")
	}
	if dead > 0 {
		items = append(items, plural(dead, "dead submit", "dead submits"))
	}
	n, complete, err := s.review.CountAwaitingReview(ctx, r)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		words := plural(int64(n), "assignment", "assignments") + " awaiting review"
		if !complete {
			words = "at least " + words
		}
		items = append(items, words)
	}
	return items, nil
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.FormatInt(n, 10) + " " + many
}

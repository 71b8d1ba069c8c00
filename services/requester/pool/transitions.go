package pool

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/project"
)

// Transitions moves pools between Toloka's states: it starts Toloka's
// open, close or archive operation, waits for it, and stores the state
// Toloka then reports. It checks no unfinished work: the pool service and
// the archive use case decide when a transition may happen.
type Transitions struct {
	catalog *catalog.Catalog
	log     *slog.Logger
}

// NewTransitions returns the transitions of the pools in cat.
func NewTransitions(cat *catalog.Catalog, log *slog.Logger) *Transitions {
	if log == nil {
		log = slog.Default()
	}
	return &Transitions{catalog: cat, log: log}
}

// Open opens a tenant's pool; its project must not be archived.
func (t *Transitions) Open(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "open")
}

// Close closes a tenant's pool.
func (t *Transitions) Close(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "close")
}

// Archive archives a tenant's pool, which must not be open in Toloka.
func (t *Transitions) Archive(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "archive")
}

func (t *Transitions) transition(ctx context.Context, tenantID, poolID, action string) (*crowdgatev1.Pool, error) {
	if poolID == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	r, err := t.catalog.ResolvePool(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	p, account := r.Pool, r.Account
	var op *toloka.Operation
	switch action {
	case "open":
		if r.Project.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
			return nil, serviceerror.NewFailedPrecondition("project %s is archived", r.Project.GetProjectId())
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
	fresh, err := t.refresh(ctx, r)
	if err != nil {
		return nil, err
	}
	t.log.InfoContext(ctx, "pool "+action+" done", "tenant_id", tenantID, "pool_id", poolID,
		"toloka_pool_id", p.GetTolokaPoolId(), "status", fresh.GetStatus().String())
	return fresh, nil
}

// refresh reads the pool's state from Toloka and stores it if it changed.
func (t *Transitions) refresh(ctx context.Context, r *catalog.Resolved) (*crowdgatev1.Pool, error) {
	tp, err := r.Account.GetPool(ctx, r.Pool.GetTolokaPoolId())
	if err != nil {
		return nil, err
	}
	p := proto.CloneOf(r.Pool)
	if applyState(p, tp) {
		if err := t.catalog.PutPool(ctx, p); err != nil {
			return nil, err
		}
	}
	return p, nil
}

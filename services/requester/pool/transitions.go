package pool

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/project"
)

// Transitions moves pools between Toloka's states: it starts Toloka's
// open, close or archive operation, waits for it, and stores the state
// Toloka then reports. It checks no unfinished work: the pool service and
// the archive use case decide when a transition may happen.
//
// Every stored change of a pool's state goes through store, which records
// pool.opened and pool.closed events before it stores the state: the
// changes Crowdgate makes (refresh after an action), those Toloka makes on
// its own (a pool that expired or ran out of work), which Watch finds by
// polling open pools, and the state an update's answer carries
// (StoreUpdate; the catalog changes a stored pool only with ChangePool).
// An event's id is made from Toloka's last_started or last_stopped, so
// every replica that sees the change records it once.
type Transitions struct {
	catalog *catalog.Catalog
	events  *events.Log
	log     *slog.Logger
}

// NewTransitions returns the transitions of the pools in cat, recording
// their events in evs.
func NewTransitions(cat *catalog.Catalog, evs *events.Log, log *slog.Logger) *Transitions {
	if log == nil {
		log = slog.Default()
	}
	return &Transitions{catalog: cat, events: evs, log: log}
}

// Open opens a tenant's pool; its project must not be archived.
func (t *Transitions) Open(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "open")
}

// Close closes a tenant's pool.
func (t *Transitions) Close(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "close")
}

// CloseForUpdate stops a tenant's open pool for editing (Toloka's
// close-for-update: last_close_reason FOR_UPDATE).
func (t *Transitions) CloseForUpdate(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "close-for-update")
}

// Archive archives a tenant's pool, which must not be open in Toloka. An
// error after which Toloka surely did not archive the pool wraps
// ErrNotArchived; any other leaves the outcome unknown (Toloka may have
// archived it, or may yet).
func (t *Transitions) Archive(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return t.transition(ctx, tenantID, poolID, "archive")
}

// ErrNotArchived is wrapped by an error of Archive after which Toloka
// surely did not archive the pool: it was not asked to (the pool could not
// be resolved or read, or is open), it refused the only request it got
// with a 4xx answer other than 409, or it reported the archive operation
// failed. A retry of a request whose answer was lost may be refused
// because the first went through, so a refusal after more than one attempt
// does not count; nor does a 409 (an archive already under way), nor a
// refusal of a pool Toloka had just reported archived.
var ErrNotArchived = errors.New("pool: not archived")

// notArchived marks err as ErrNotArchived; its message is err's.
type notArchived struct{ err error }

func (e notArchived) Error() string   { return e.err.Error() }
func (e notArchived) Unwrap() []error { return []error{e.err, ErrNotArchived} }

// refusedOnce reports whether err is Toloka's 4xx answer to the one
// request a call made: the request was refused, not carried out. A 409
// does not count: it may say an archive is already under way
// (OPERATION_ALREADY_EXISTS, CONFLICT_STATE), started by an earlier
// archive whose fence is gone. UNARCHIVED_POOLS_CONFLICT does, after any
// number of attempts: a training that pools not archived link to was not
// archived, and an earlier attempt cannot have archived it (its linked
// pools, once archived, stay archived).
func refusedOnce(err error) bool {
	var te *toloka.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusConflict && te.Code == toloka.CodeUnarchivedPoolsConflict {
		return true
	}
	return te.StatusCode >= 400 && te.StatusCode < 500 && te.StatusCode != http.StatusConflict && te.Attempts <= 1
}

func (t *Transitions) transition(ctx context.Context, tenantID, poolID, action string) (_ *crowdgatev1.Pool, err error) {
	if poolID == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	// Once the action has gone out, Toloka may have carried it out even if
	// this call fails after (its operation not waited for, its result not
	// read back, the caller gone): the stored pool may be stale, still
	// CLOSED after an open, say, which the watch would never read. Such a
	// pool is marked, on a context that outlives the caller's, and the
	// watch reads it until a read succeeds and records its events then.
	sent := false
	defer func() {
		if !sent || err == nil {
			return
		}
		mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if merr := t.catalog.MarkPoolToReread(mctx, tenantID, poolID); merr != nil {
			t.log.WarnContext(ctx, "pool: could not mark a pool to read again", "tenant_id", tenantID, "pool_id", poolID, "error", merr.Error())
		}
	}()
	r, err := t.catalog.ResolvePool(ctx, tenantID, poolID)
	if err != nil {
		if action == "archive" {
			return nil, notArchived{err}
		}
		return nil, err
	}
	p := r.Pool
	rem := remoteOf(r.Account, p)
	var op *toloka.Operation
	switch action {
	case "open":
		if r.Project.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
			return nil, serviceerror.NewFailedPrecondition("project %s is archived", r.Project.GetProjectId())
		}
		sent = true
		op, err = rem.act(ctx, "open")
	case "close", "close-for-update":
		sent = true
		op, err = rem.act(ctx, action)
	case "archive":
		current, gerr := rem.get(ctx)
		if gerr != nil {
			return nil, notArchived{project.TolokaError("pool", gerr)}
		}
		if current.Status == toloka.PoolOpen {
			return nil, notArchived{serviceerror.NewFailedPrecondition("pool %s is OPEN: close it before archiving it", poolID)}
		}
		sent = true
		op, err = rem.act(ctx, "archive")
		if err != nil && refusedOnce(err) && current.Status != toloka.PoolArchived {
			return nil, notArchived{project.TolokaError("pool", err)}
		}
	}
	if err != nil {
		return nil, project.TolokaError("pool", err)
	}
	if op != nil {
		if done, err := r.Account.WaitOperation(ctx, op.ID); err != nil {
			if action == "archive" && done != nil && done.Status == toloka.OperationFail {
				return nil, notArchived{err}
			}
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

// refresh reads the pool's state from Toloka and stores it if it changed
// (store).
func (t *Transitions) refresh(ctx context.Context, r *catalog.Resolved) (*crowdgatev1.Pool, error) {
	tp, err := remoteOf(r.Account, r.Pool).get(ctx)
	if err != nil {
		return nil, err
	}
	return t.store(ctx, r.Pool.GetTenantId(), r.Pool.GetPoolId(), tp, nil)
}

// StoreUpdate stores a change of a pool's settings that Toloka took: edit
// makes the pool as changed from the pool as stored now, and tp is the
// pool Toloka answered with, whose state (status, last start and stop) is
// stored with its events, as refresh stores it. An update is the other
// way a pool's state is stored (Toloka's answer may show a close it made
// on its own): both go through store, so no stored change of state lacks
// its events.
func (t *Transitions) StoreUpdate(ctx context.Context, tenantID, poolID string, tp *toloka.Pool, edit func(cur *crowdgatev1.Pool) *crowdgatev1.Pool) (*crowdgatev1.Pool, error) {
	if edit == nil {
		return nil, errors.New("pool: StoreUpdate without an edit")
	}
	return t.store(ctx, tenantID, poolID, tp, edit)
}

// store applies edit (none: no change of settings) and then tp's state to
// the pool as stored when it is written (a compare-and-set), not to a copy
// read before Toloka answered: an update stored meanwhile (UpdatePool,
// another refresh) is kept. A state older than the stored one (Toloka's
// last start or stop before the stored one, or anything but ARCHIVED over
// ARCHIVED) is not applied. A change of state records its pool.opened and
// pool.closed events before it is stored.
func (t *Transitions) store(ctx context.Context, tenantID, poolID string, tp *toloka.Pool, edit func(cur *crowdgatev1.Pool) *crowdgatev1.Pool) (*crowdgatev1.Pool, error) {
	return t.catalog.ChangePool(ctx, tenantID, poolID, func(cur *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) {
		p, changed := cur, false
		if edit != nil {
			p, changed = edit(proto.CloneOf(cur)), true
		}
		next := proto.CloneOf(p)
		if !applyState(next, tp) || olderState(next, cur) {
			return p, changed, nil
		}
		// The events first: recorded once by id, so a change tried again
		// records nothing new.
		if err := t.recordChange(ctx, cur, next); err != nil {
			return nil, false, err
		}
		return next, true, nil
	})
}

// olderState reports whether next, a pool with a state read from Toloka,
// went back in time from cur: its last start or stop is before cur's, or
// cur is archived and next is not.
func olderState(next, cur *crowdgatev1.Pool) bool {
	before := func(a, b *timestamppb.Timestamp) bool {
		return b != nil && (a == nil || a.AsTime().Before(b.AsTime()))
	}
	if cur.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED && next.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED {
		return true // an archive is final in Toloka; it moves no timestamp
	}
	return before(next.GetLastStarted(), cur.GetLastStarted()) || before(next.GetLastStopped(), cur.GetLastStopped())
}

// recordChange appends the events of a pool's change from before to
// after: pool.closed when Toloka's last_stopped moved, pool.opened when
// its last_started did, in the order they happened. It runs before the
// change is stored, so a change stored has its events.
func (t *Transitions) recordChange(ctx context.Context, before, after *crowdgatev1.Pool) error {
	type change struct {
		typ string
		at  *timestamppb.Timestamp
	}
	var cs []change
	if at := after.GetLastStopped(); at != nil && !proto.Equal(at, before.GetLastStopped()) {
		cs = append(cs, change{events.TypePoolClosed, at})
	}
	if at := after.GetLastStarted(); at != nil && !proto.Equal(at, before.GetLastStarted()) {
		cs = append(cs, change{events.TypePoolOpened, at})
	}
	if len(cs) == 2 && cs[1].at.AsTime().Before(cs[0].at.AsTime()) {
		cs[0], cs[1] = cs[1], cs[0]
	}
	for _, c := range cs {
		ev := events.NewEvent(after.GetTenantId(), c.typ, "pools/"+after.GetPoolId(), c.at.AsTime(), c.at.AsTime().UTC().Format(time.RFC3339Nano))
		ev.Data = &crowdgatev1.Event_Pool{Pool: after}
		if err := t.events.Append(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Found is an assignment Toloka confirmed, with the pool, project and
// account it was read through.
type Found struct {
	Resolved
	Assignment *toloka.Assignment
}

// AssignmentNotFound reports an assignment that is in no pool the search
// could see. It unwraps to a serviceerror.NotFound.
type AssignmentNotFound struct {
	// AssignmentID is the id looked for.
	AssignmentID string
	// Final is true when the answer holds for every tenant: no pool of any
	// tenant has the id's Toloka pool, or Toloka knows the assignment in
	// none of them. It is false when pools of other tenants were left out
	// of a search within one tenant.
	Final bool
	// AskedIn are the pools Toloka was asked in and answered that it does
	// not know the assignment there.
	AskedIn []*crowdgatev1.Pool
}

// Error describes the refusal.
func (e *AssignmentNotFound) Error() string { return e.Unwrap().Error() }

// Unwrap returns the domain error.
func (e *AssignmentNotFound) Unwrap() error {
	return &serviceerror.NotFound{Resource: "assignment", ID: e.AssignmentID}
}

// ErrMalformedAssignmentID is the InvalidArgument of an id that is not a
// Toloka assignment id.
func malformedAssignmentID(field string) error {
	return serviceerror.NewInvalidArgument(field, "is not a Toloka assignment id (10 hex digits, \"--\", 24 hex digits, like %s)", toloka.AssignmentIDExample)
}

// CheckAssignmentID returns an InvalidArgument naming field unless id is a
// Toloka assignment id.
func CheckAssignmentID(field, id string) error {
	if _, ok := toloka.ParseAssignmentID(id); !ok {
		return malformedAssignmentID(field)
	}
	return nil
}

// Check vets each pool FindAssignment may ask Toloka in, before Toloka is
// asked.
type Check struct {
	// Key, when set, names a key about a pool (a string: a counter, a
	// budget) whose value Vet needs. It is read in the round trip that
	// reads the pool and its project, so the check costs no round trip of
	// its own.
	Key func(tenantID, poolID string) string
	// Vet judges the resolved pool, given Key's value ("" when the key does
	// not exist or Key is nil). An error refuses the pool: Toloka is not
	// asked in it, and the error is the search's answer when no other pool
	// holds the assignment (FindAssignment).
	Vet func(r *Resolved, value string) error
}

// FindAssignment finds an assignment in Toloka through the pools its id can
// belong to: those with the Toloka pool id the assignment id starts with,
// of tenantID only when it is not empty. For each such pool it resolves the
// project and account, vets the pool with check (when set) and asks Toloka
// GET /assignments/{id}; the first pool Toloka places the assignment in
// answers.
//
// A pool check.Vet refuses is not asked, but the search goes on: pools of
// other tenants, and of the other environment (the sandbox and production
// number their pools separately), may have the same Toloka pool id, and
// one tenant's archived or over-budget pool must not answer for another
// tenant's assignment. The first refusal is the answer only when no pool
// holds the assignment and every pool not refused could be asked.
//
// Errors: InvalidArgument naming "assignment_id" for a malformed id; the
// last failure of a pool that could not be asked (Toloka or Redis
// unavailable, a rate limit, a credential that does not open, check.Key
// unreadable), returned as is; otherwise check.Vet's first refusal (a
// *Refusal), or *AssignmentNotFound.
func (c *Catalog) FindAssignment(ctx context.Context, assignmentID, tenantID string, check *Check) (*Found, error) {
	tolokaPoolID, ok := toloka.ParseAssignmentID(assignmentID)
	if !ok {
		return nil, malformedAssignmentID("assignment_id")
	}
	pools, kept, err := c.poolsByTolokaID(ctx, tolokaPoolID, false, check)
	if err != nil {
		return nil, err
	}
	found, err := c.findIn(ctx, assignmentID, tenantID, check, pools)
	var nf *AssignmentNotFound
	if !kept || !errors.As(err, &nf) {
		return found, err
	}
	// Not found through an index answer kept in memory: a pool registered
	// since (in the other environment) would be missing from it, so the
	// search is made again when a fresh answer names other pools.
	fresh, _, ferr := c.poolsByTolokaID(ctx, tolokaPoolID, true, check)
	if ferr != nil || samePools(pools, fresh) {
		return found, err
	}
	return c.findIn(ctx, assignmentID, tenantID, check, fresh)
}

// samePools reports whether a and b are the same pools.
func samePools(a, b []candidate) bool {
	return slices.EqualFunc(a, b, func(x, y candidate) bool {
		return x.pool.GetTenantId() == y.pool.GetTenantId() && x.pool.GetPoolId() == y.pool.GetPoolId()
	})
}

// findIn asks Toloka for the assignment in pools (FindAssignment).
func (c *Catalog) findIn(ctx context.Context, assignmentID, tenantID string, check *Check, pools []candidate) (*Found, error) {
	notFound := &AssignmentNotFound{AssignmentID: assignmentID, Final: true}
	var transient, refused error
	for _, cand := range pools {
		p := cand.pool
		if tenantID != "" && p.GetTenantId() != tenantID {
			notFound.Final = false
			continue
		}
		res, err := c.resolve(ctx, cand)
		if err != nil {
			if !isNotFound(err) {
				transient = err
				c.log.WarnContext(ctx, "catalog: a pool's project or credential cannot be used",
					"tenant_id", p.GetTenantId(), "pool_id", p.GetPoolId(), "err", err)
			}
			continue
		}
		if check != nil && check.Vet != nil {
			value, err := checkValue(cand)
			if err != nil {
				transient = err
				continue
			}
			if err := check.Vet(res, value); err != nil {
				if refused == nil {
					refused = err
				}
				continue
			}
		}
		a, err := res.Account.GetAssignment(ctx, assignmentID)
		if err != nil {
			var pd *serviceerror.PermissionDenied
			if isNotFound(err) || errors.As(err, &pd) {
				notFound.AskedIn = append(notFound.AskedIn, p)
			} else {
				transient = err
			}
			continue
		}
		if a.PoolID != p.GetTolokaPoolId() || (a.ID != "" && a.ID != assignmentID) {
			// Toloka placed the id in another pool: not this one's.
			continue
		}
		return &Found{Resolved: *res, Assignment: a}, nil
	}
	if transient != nil {
		return nil, transient
	}
	if refused != nil {
		return nil, &Refusal{Err: refused, AskedIn: notFound.AskedIn}
	}
	return nil, notFound
}

// Refusal is check.Vet's first refusal, the answer of a search in which no
// pool held the assignment. It unwraps to the refusal.
type Refusal struct {
	// Err is what check.Vet returned.
	Err error
	// AskedIn are the pools not refused, which Toloka was asked in and
	// answered that it does not know the assignment there (as in
	// AssignmentNotFound: the asks a budget of unknown ids counts).
	AskedIn []*crowdgatev1.Pool
}

// Error is the refusal's.
func (e *Refusal) Error() string { return e.Err.Error() }

// Unwrap returns the refusal.
func (e *Refusal) Unwrap() error { return e.Err }

// String describes where an assignment was found, for logs.
func (f *Found) String() string {
	return fmt.Sprintf("assignment %s in pool %s (tenant %s)", f.Assignment.ID, f.Pool.GetPoolId(), f.Pool.GetTenantId())
}

// checkValue is the value of the search's check.Key for cand's pool, as
// read with the pool ("" without a Key).
func checkValue(cand candidate) (string, error) {
	if cand.checked == nil {
		return "", nil
	}
	v, err := cand.checked.Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, storage.Unavailable(err)
}

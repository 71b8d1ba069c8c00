// Package catalog is the one way from an id to the Toloka objects behind
// it: the credentials, projects and pools each tenant registered with
// Crowdgate, stored in Redis, and the Toloka account that serves them.
//
// Every lookup in the flow goes through it. The landing and StartSession
// resolve an assignment id to its pool, project and account
// (FindAssignment); review does the same within the caller's tenant;
// submission routes a pool to its Toloka pool and credential (Route); the
// pool and project services read and write their records here. So there is
// one reading of Toloka's assignment-id convention (toloka.ParseAssignmentID),
// one index from Toloka pool ids to Crowdgate pools, and one place where a
// sealed API key is opened.
//
// Invariants:
//   - A record is only ever read within its tenant's key space; the global
//     index from Toloka pool id to pool is the one cross-tenant lookup, and
//     FindAssignment filters its answer by tenant when asked to.
//   - API keys are sealed (secretbox) bound to their tenant and credential
//     id, so a sealed key copied onto another record does not open; they
//     are never logged or returned.
//   - What the catalog caches in process does not go stale, or only
//     briefly: a pool's route (its project, Toloka pool, credential and
//     environment) never changes after the pool is created. Opened accounts
//     are kept for AccountTTL and dropped at once on this replica when
//     their credential changes. What the index of Toloka pool ids said is
//     kept for tolokaIndexTTL, never an empty answer, and an assignment not
//     found through a kept answer is looked for again through a fresh one.
//
// Redis layout (P is the configured prefix; records through storage.Store):
//
//	P credential:<tenant>:{id}          a credential's metadata
//	P credential-secret:<tenant>:{id}   its sealed API key
//	P credential-users:<tenant>:{id}    projects that use it (set)
//	P credential-deleted:<tenant>:{id}  the deleting call's token, 10 minutes (a resent delete)
//	P turn:<name>                       "<deadline ms>|<taker's token>" while a replica holds a turn
//	P poolreread:<tenant>               pools the pool watch reads whatever their stored status (hash: pool id -> mark)
//	P project:<tenant>:{id}             a project
//	P pool:<tenant>:{id}                a pool
//	P idx:<kind>:<tenant>[:<parent>]    newest-first indexes (a project's pools)
//	P pool-by-toloka:<ENV>:<toloka id>  "<tenant>\x1f<pool id>"
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// AccountTTL is how long an opened Toloka account is reused before its
// sealed key is read again (a key replaced on another replica is picked up
// within it).
const AccountTTL = time.Minute

// maxCached bounds each in-process cache; a full cache is emptied.
const maxCached = 100_000

// Catalog is the registry of tenants' Toloka objects. It is safe for
// concurrent use.
type Catalog struct {
	rdb         redis.UniversalClient
	prefix      string
	box         *secretbox.Box
	toloka      *toloka.Client
	now         func() time.Time
	log         *slog.Logger
	credentials *storage.Store[*crowdgatev1.Credential]
	projects    *storage.Store[*crowdgatev1.Project]
	pools       *storage.Store[*crowdgatev1.Pool]

	mu       sync.Mutex
	accounts map[recordKey]cachedAccount
	routes   map[recordKey]Route
	// byToloka holds, by Toloka pool id, the pools the index named there
	// (tolokaIndex; never an empty answer), for tolokaIndexTTL.
	byToloka map[string]cachedIndex
	// projectOf holds each pool's project id once read: a pool never
	// changes project, so a cold landing reads the pool and its project in
	// one round trip.
	projectOf map[recordKey]string
}

// candidate is a pool a cold landing may find its assignment in, with its
// project when it was read alongside (nil: read it).
type candidate struct {
	pool    *crowdgatev1.Pool
	project *crowdgatev1.Project
	// checked is the read of the search's Check.Key for the pool, made
	// with the pool's (nil when there is none).
	checked *redis.StringCmd
}

// cachedIndex is what tolokaIndex read from the index, and until when
// it is kept.
type cachedIndex struct {
	pools   []recordKey
	expires time.Time
}

// tolokaIndexTTL is how long a replica keeps what the index of Toloka
// pool ids said. A Toloka pool id is given once, by Toloka, so the index
// only grows; the bound is for a pool of another environment registered
// under the same id since.
const tolokaIndexTTL = 5 * time.Second

type recordKey struct{ tenantID, id string }

type cachedAccount struct {
	account *toloka.Account
	expires time.Time
}

// New returns the catalog over rdb (keys under prefix). box seals API keys;
// client makes the accounts; now is the clock of cache expiry.
func New(rdb redis.UniversalClient, prefix string, box *secretbox.Box, client *toloka.Client, now func() time.Time, log *slog.Logger) *Catalog {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Catalog{
		rdb: rdb, prefix: prefix, box: box, toloka: client, now: now, log: log,
		credentials: storage.NewStore(rdb, prefix, "credential", func() *crowdgatev1.Credential { return new(crowdgatev1.Credential) }),
		projects:    storage.NewStore(rdb, prefix, "project", func() *crowdgatev1.Project { return new(crowdgatev1.Project) }),
		pools:       storage.NewStore(rdb, prefix, "pool", func() *crowdgatev1.Pool { return new(crowdgatev1.Pool) }),
		accounts:    map[recordKey]cachedAccount{},
		routes:      map[recordKey]Route{},
		byToloka:    map[string]cachedIndex{},
		projectOf:   map[recordKey]string{},
	}
}

// TolokaEnvironment maps an API environment to the Toloka client's.
func TolokaEnvironment(e crowdgatev1.Environment) (toloka.Environment, bool) {
	switch e {
	case crowdgatev1.Environment_ENVIRONMENT_SANDBOX:
		return toloka.Sandbox, true
	case crowdgatev1.Environment_ENVIRONMENT_PRODUCTION:
		return toloka.Production, true
	}
	return "", false
}

// Resolved is a pool or a project with the records above it and the Toloka
// account that serves them.
type Resolved struct {
	// Pool is nil when a project was resolved.
	Pool    *crowdgatev1.Pool
	Project *crowdgatev1.Project
	Account *toloka.Account
}

// Projects.

// CreateProject stores a new project.
func (c *Catalog) CreateProject(ctx context.Context, p *crowdgatev1.Project) error {
	return c.projects.Create(ctx, p.GetTenantId(), p.GetProjectId(), p)
}

// PutProject overwrites a stored project.
func (c *Catalog) PutProject(ctx context.Context, p *crowdgatev1.Project) error {
	return c.projects.Put(ctx, p.GetTenantId(), p.GetProjectId(), p)
}

// Project returns a tenant's project.
func (c *Catalog) Project(ctx context.Context, tenantID, projectID string) (*crowdgatev1.Project, error) {
	return c.projects.Get(ctx, tenantID, projectID)
}

// ListProjects pages through a tenant's projects, newest first.
func (c *Catalog) ListProjects(ctx context.Context, tenantID string, page paging.Page, keep func(*crowdgatev1.Project) bool) ([]*crowdgatev1.Project, string, error) {
	return c.projects.List(ctx, tenantID, "", page, keep)
}

// ResolveProject returns a tenant's project and its account.
func (c *Catalog) ResolveProject(ctx context.Context, tenantID, projectID string) (*Resolved, error) {
	p, err := c.Project(ctx, tenantID, projectID)
	if err != nil {
		return nil, err
	}
	account, err := c.Account(ctx, tenantID, p.GetCredentialId())
	if err != nil {
		return nil, err
	}
	return &Resolved{Project: p, Account: account}, nil
}

// Pools.

// CreatePool stores a new pool of a project in environment env and indexes
// it by its Toloka pool id.
func (c *Catalog) CreatePool(ctx context.Context, p *crowdgatev1.Pool, env crowdgatev1.Environment) error {
	if err := c.pools.Create(ctx, p.GetTenantId(), p.GetPoolId(), p, "", p.GetProjectId()); err != nil {
		return err
	}
	return storage.Unavailable(c.rdb.Set(ctx, c.tolokaKey(env, p.GetTolokaPoolId()), p.GetTenantId()+indexSep+p.GetPoolId(), 0).Err())
}

// ChangePool applies change to a tenant's pool as stored now, and stores
// the result when change reports a change (storage.Store.Change: a change
// made from an older read never overwrites a newer write). It is the one
// way a stored pool changes: pool.Transitions goes through it to record
// the events of a change of state with the change.
func (c *Catalog) ChangePool(ctx context.Context, tenantID, poolID string, change func(cur *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error)) (*crowdgatev1.Pool, error) {
	return c.pools.Change(ctx, tenantID, poolID, change)
}

// Pool returns a tenant's pool as stored.
func (c *Catalog) Pool(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error) {
	return c.pools.Get(ctx, tenantID, poolID)
}

// ListPools pages through a project's pools, newest first.
func (c *Catalog) ListPools(ctx context.Context, tenantID, projectID string, page paging.Page, keep func(*crowdgatev1.Pool) bool) ([]*crowdgatev1.Pool, string, error) {
	return c.pools.List(ctx, tenantID, projectID, page, keep)
}

// PoolsOfProject returns every pool of a project, in any status.
func (c *Catalog) PoolsOfProject(ctx context.Context, tenantID, projectID string) ([]*crowdgatev1.Pool, error) {
	return c.pools.All(ctx, tenantID, projectID)
}

// ResolvePool returns a tenant's pool, its project and their account.
func (c *Catalog) ResolvePool(ctx context.Context, tenantID, poolID string) (*Resolved, error) {
	p, err := c.Pool(ctx, tenantID, poolID)
	if err != nil {
		return nil, err
	}
	return c.Resolve(ctx, p)
}

// Resolve returns pool p (already read) with its project and account.
func (c *Catalog) Resolve(ctx context.Context, p *crowdgatev1.Pool) (*Resolved, error) {
	return c.resolve(ctx, candidate{pool: p})
}

// resolve is Resolve, with the project when the candidate has it.
func (c *Catalog) resolve(ctx context.Context, cand candidate) (*Resolved, error) {
	p, prj := cand.pool, cand.project
	if prj == nil {
		var err error
		if prj, err = c.Project(ctx, p.GetTenantId(), p.GetProjectId()); err != nil {
			return nil, err
		}
	}
	account, err := c.Account(ctx, p.GetTenantId(), prj.GetCredentialId())
	if err != nil {
		return nil, err
	}
	return &Resolved{Pool: p, Project: prj, Account: account}, nil
}

// Route is what never changes about a pool once it exists: where its work
// goes in Toloka and with which credential.
type Route struct {
	TenantID, PoolID, ProjectID string
	// TolokaPoolID is the pool's id in Toloka.
	TolokaPoolID string
	// CredentialID is the credential of the pool's project.
	CredentialID string
	// Environment is the Toloka installation of the credential.
	Environment crowdgatev1.Environment
}

// Route returns a tenant's pool's route, from memory after the first read.
func (c *Catalog) Route(ctx context.Context, tenantID, poolID string) (Route, error) {
	k := recordKey{tenantID, poolID}
	c.mu.Lock()
	r, ok := c.routes[k]
	c.mu.Unlock()
	if ok {
		return r, nil
	}
	p, err := c.Pool(ctx, tenantID, poolID)
	if err != nil {
		return Route{}, err
	}
	if p.GetTolokaPoolId() == "" {
		return Route{}, serviceerror.NewFailedPrecondition("pool %s has no Toloka pool yet", poolID)
	}
	prj, err := c.Project(ctx, tenantID, p.GetProjectId())
	if err != nil {
		return Route{}, err
	}
	if prj.GetCredentialId() == "" {
		return Route{}, serviceerror.NewFailedPrecondition("project %s has no credential", prj.GetProjectId())
	}
	r = Route{
		TenantID: tenantID, PoolID: poolID, ProjectID: p.GetProjectId(), TolokaPoolID: p.GetTolokaPoolId(),
		CredentialID: prj.GetCredentialId(), Environment: prj.GetEnvironment(),
	}
	c.mu.Lock()
	if len(c.routes) >= maxCached {
		clear(c.routes)
	}
	c.routes[k] = r
	c.mu.Unlock()
	return r, nil
}

// The global index of Toloka pool ids.

// environments are the Toloka installations a pool id may belong to.
var environments = []crowdgatev1.Environment{crowdgatev1.Environment_ENVIRONMENT_SANDBOX, crowdgatev1.Environment_ENVIRONMENT_PRODUCTION}

const indexSep = "\x1f"

func (c *Catalog) tolokaKey(env crowdgatev1.Environment, tolokaPoolID string) string {
	return fmt.Sprintf("%spool-by-toloka:%s:%s", c.prefix, strings.TrimPrefix(env.String(), "ENVIRONMENT_"), tolokaPoolID)
}

// poolsByTolokaID returns the pools (of any tenant) with this Toloka pool
// id: at most one per environment, each with its project when this replica
// knows which it is. Every cold landing asks, so the index is read from
// Redis only when this replica has not found the id there in the last
// tolokaIndexTTL, or when fresh is set; the pools and projects themselves
// are read each time, in one round trip with each pool's check.Key. kept
// reports an index answer from memory.
func (c *Catalog) poolsByTolokaID(ctx context.Context, tolokaPoolID string, fresh bool, check *Check) (pools []candidate, kept bool, err error) {
	keys, kept, err := c.tolokaIndex(ctx, tolokaPoolID, fresh)
	if err != nil {
		return nil, false, err
	}
	poolCmds := make([]*redis.StringCmd, len(keys))
	projectCmds := make([]*redis.StringCmd, len(keys))
	checkCmds := make([]*redis.StringCmd, len(keys))
	projectIDs := make([]string, len(keys))
	c.mu.Lock()
	for i, k := range keys {
		projectIDs[i] = c.projectOf[k]
	}
	c.mu.Unlock()
	_, _ = c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error { // each answer is read below
		for i, k := range keys {
			poolCmds[i] = c.pools.GetIn(ctx, p, k.tenantID, k.id)
			if projectIDs[i] != "" {
				projectCmds[i] = c.projects.GetIn(ctx, p, k.tenantID, projectIDs[i])
			}
			if check != nil && check.Key != nil {
				checkCmds[i] = p.Get(ctx, check.Key(k.tenantID, k.id))
			}
		}
		return nil
	})
	var out []candidate
	for i, k := range keys {
		p, err := c.pools.Got(poolCmds[i], k.id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		cand := candidate{pool: p, checked: checkCmds[i]}
		if projectCmds[i] != nil && p.GetProjectId() == projectIDs[i] {
			// A project not found, or not read, is read again by Resolve.
			cand.project, _ = c.projects.Got(projectCmds[i], projectIDs[i])
		} else if p.GetProjectId() != "" {
			c.mu.Lock()
			if len(c.projectOf) >= maxCached {
				clear(c.projectOf)
			}
			c.projectOf[k] = p.GetProjectId()
			c.mu.Unlock()
		}
		out = append(out, cand)
	}
	return out, kept, nil
}

// tolokaIndex returns the pools the index names under a Toloka pool id,
// and whether the answer was kept in memory.
func (c *Catalog) tolokaIndex(ctx context.Context, tolokaPoolID string, fresh bool) ([]recordKey, bool, error) {
	now := c.now()
	c.mu.Lock()
	hit, ok := c.byToloka[tolokaPoolID]
	c.mu.Unlock()
	if ok && !fresh && now.Before(hit.expires) {
		return hit.pools, true, nil
	}
	cmds := make([]*redis.StringCmd, len(environments))
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, env := range environments {
			cmds[i] = p.Get(ctx, c.tolokaKey(env, tolokaPoolID))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, storage.Unavailable(err)
	}
	var keys []recordKey
	for _, cmd := range cmds {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, false, storage.Unavailable(err)
		}
		tenantID, poolID, ok := strings.Cut(v, indexSep)
		if !ok {
			continue
		}
		keys = append(keys, recordKey{tenantID, poolID})
	}
	if len(keys) > 0 {
		// An empty find is not kept: the pool may be registered next.
		c.mu.Lock()
		if len(c.byToloka) >= maxCached {
			clear(c.byToloka)
		}
		c.byToloka[tolokaPoolID] = cachedIndex{pools: keys, expires: now.Add(tolokaIndexTTL)}
		c.mu.Unlock()
	}
	return keys, false, nil
}

func isNotFound(err error) bool {
	var nf *serviceerror.NotFound
	return errors.As(err, &nf)
}

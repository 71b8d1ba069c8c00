package crowdload

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// maxLandingAccounts bounds --accounts: each account is a credential, a
// project and an open pool in the gateway, made before the run.
const maxLandingAccounts = 256

// LandingAccount is one Toloka requester account of a landing run and the
// gateway pool its assignments are in.
type LandingAccount struct {
	// Account is the emulator's account name, Key its API key.
	Account, Key string
	// PoolID and TolokaPoolID are the account's pool in the gateway and in
	// Toloka.
	PoolID, TolokaPoolID string
	// Assignments is how many of the run's assignments are in the pool;
	// ColdLandings how many of them the cold phase saw redirected;
	// Tolokers how many Tolokers the gateway's registry lists in the pool
	// after the cold phase (ListTolokers; each assignment is a Toloker of
	// its own, so the three are equal in a run that passes).
	Assignments, ColdLandings, Tolokers int64
}

// setupLandingAccounts returns the run's n accounts: the first is the one
// setupResources made (r.tolokaKey, r.poolID); each other gets its own API
// key in the emulator and its own credential, project and open pool in the
// gateway, a few at a time.
func (r *runner) setupLandingAccounts(ctx context.Context, n int) ([]*LandingAccount, error) {
	accounts := make([]*LandingAccount, n)
	accounts[0] = &LandingAccount{
		Account: "crowdload-" + r.res.RunID, Key: r.tolokaKey,
		PoolID: r.poolID, TolokaPoolID: r.tolokaPoolID,
	}
	if n == 1 {
		return accounts, nil
	}
	r.logf("creating %d more Toloka accounts, each with a credential, project and open pool", n-1)
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	next.Store(1)
	for range min(n-1, 8) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				a := &LandingAccount{
					Account: fmt.Sprintf("crowdload-%s-%03d", r.res.RunID, i),
					Key:     fmt.Sprintf("crowdload-key-%s-%03d", r.res.RunID, i),
				}
				err := r.emu.addAPIKey(ctx, a.Key, a.Account)
				if err == nil {
					a.PoolID, a.TolokaPoolID, err = r.createLandingPool(ctx, a.Key, fmt.Sprintf("crowdload %s account %d", r.res.RunID, i))
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("account %d: %w", i, err))
					mu.Unlock()
					return
				}
				accounts[i] = a
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return accounts, ctx.Err()
}

// createLandingPool creates a credential for the Toloka API key, a project
// and a pool through the gateway's API and opens the pool, as
// setupResources does for the run's first account.
func (r *runner) createLandingPool(ctx context.Context, key, name string) (poolID, tolokaPoolID string, err error) {
	api, to := r.apis[0], r.cfg.RequestTimeout
	cred, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreateCredentialResponse, error) {
		return api.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
			DisplayName: name, Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: key,
		})
	})
	if err != nil {
		return "", "", fmt.Errorf("CreateCredential: %w", err)
	}
	prj, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreateProjectResponse, error) {
		return api.CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
			CredentialId:      cred.GetCredential().GetCredentialId(),
			PublicName:        name,
			PublicDescription: "Landing benchmark project: label items on the stand-in platform.",
			PlatformUrl:       r.platform.url,
			PartnerName:       "crowdload",
			PartnerUrl:        strings.TrimSuffix(r.platform.url, "/work"),
			BonusPriceMin:     "0.01",
			BonusPriceMax:     "2.50",
		}})
	})
	if err != nil {
		return "", "", fmt.Errorf("CreateProject: %w", err)
	}
	pool, err := setupCall(ctx, to, func(ctx context.Context) (*crowdgatev1.CreatePoolResponse, error) {
		return api.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
			ProjectId:                    prj.GetProject().GetProjectId(),
			PrivateName:                  name,
			WillExpire:                   timestamppb.New(time.Now().Add(7 * 24 * time.Hour)),
			RewardPerAssignment:          "0.05",
			AssignmentMaxDurationSeconds: int64(r.cfg.AssignmentDuration / time.Second),
			Defaults:                     &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
		}})
	})
	if err != nil {
		return "", "", fmt.Errorf("CreatePool: %w", err)
	}
	poolID = pool.GetPool().GetPoolId()
	opened, err := setupCall(ctx, 2*to, func(ctx context.Context) (*crowdgatev1.OpenPoolResponse, error) {
		return api.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: poolID})
	})
	if err != nil {
		return "", "", fmt.Errorf("OpenPool: %w", err)
	}
	tolokaPoolID = opened.GetPool().GetTolokaPoolId()
	if tolokaPoolID == "" {
		tolokaPoolID = pool.GetPool().GetTolokaPoolId()
	}
	if poolID == "" || tolokaPoolID == "" {
		return "", "", fmt.Errorf("the pool has no pool_id (%q) or toloka_pool_id (%q)", poolID, tolokaPoolID)
	}
	return poolID, tolokaPoolID, nil
}

// accountOf is the account of the run's i-th assignment: the assignments
// are spread over the accounts round-robin, so any run of consecutive
// landings is spread over them too.
func accountOf(i, accounts int) int { return i % accounts }

// tolokersInPool counts the Tolokers the gateway's registry has for a pool
// (ListTolokers, page after page): each of the run's assignments is a
// Toloker of its own, so after the cold phase it is the pool's cold
// landings as the gateway recorded them.
func (r *runner) tolokersInPool(ctx context.Context, poolID string) (int64, error) {
	// A Toloker active while the list is paged may be listed twice:
	// distinct user_ids are counted.
	seen, token := map[string]bool{}, ""
	for {
		resp, err := setupCall(ctx, r.cfg.RequestTimeout, func(ctx context.Context) (*crowdgatev1.ListTolokersResponse, error) {
			return r.apis[0].ListTolokers(ctx, &crowdgatev1.ListTolokersRequest{PoolId: poolID, PageSize: 500, PageToken: token})
		})
		if err != nil {
			return int64(len(seen)), fmt.Errorf("ListTolokers: %w", err)
		}
		for _, t := range resp.GetTolokers() {
			seen[t.GetUserId()] = true
		}
		if token = resp.GetNextPageToken(); token == "" {
			return int64(len(seen)), nil
		}
	}
}

package archive_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/gateway/gatewaytest"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/archive"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// work is a fake source of unfinished work for all three kinds: counts per
// pool, and counts it reports only once the pool is closed (work that
// started while the pool was closing).
type work struct {
	mu         sync.Mutex
	live       map[string]int64
	queued     map[string]int64
	review     map[string]int
	lateLive   map[string]int64
	closedPool func(poolID string) bool
	// fences are the pools fenced, by holder; sealed the pools sealed.
	fences map[string]string
	sealed map[string]bool
	// fenceCalls counts each pool's fences; lostFence, when set, adds
	// sessions to a fence's count (sessions that started while a fence
	// was lost).
	fenceCalls map[string]int
	lostFence  func(poolID string, call int) int64
	// fenceAnswerLost makes Fence set the fence and then fail, as a call
	// whose reply is lost does.
	fenceAnswerLost bool
}

func newWork() *work {
	return &work{live: map[string]int64{}, queued: map[string]int64{}, review: map[string]int{}, lateLive: map[string]int64{},
		fences: map[string]string{}, sealed: map[string]bool{}, fenceCalls: map[string]int{}}
}

func (w *work) Fence(ctx context.Context, tenantID, poolID, holder string, _ time.Duration) (int64, error) {
	w.mu.Lock()
	w.fences[poolID] = holder
	w.fenceCalls[poolID]++
	if w.fenceAnswerLost {
		w.mu.Unlock()
		return 0, &serviceerror.Unavailable{Message: "the reply was lost"}
	}
	var lost int64
	if w.lostFence != nil {
		lost = w.lostFence(poolID, w.fenceCalls[poolID])
	}
	w.mu.Unlock()
	n, err := w.LiveCount(ctx, tenantID, poolID)
	return n + lost, err
}

func (w *work) Unfence(_ context.Context, _, poolID, holder string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fences[poolID] == holder {
		delete(w.fences, poolID)
	}
	return nil
}

func (w *work) LeaveFenced(_ context.Context, _, poolID, holder string, _ time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fences[poolID] == holder {
		w.fences[poolID] = "unsettled"
	}
	return nil
}

func (w *work) Seal(_ context.Context, _, poolID string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sealed[poolID] = true
	return nil
}

// fenced returns the pools fenced and not sealed, and those sealed.
func (w *work) fenced() (fenced, sealed []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for poolID := range w.fences {
		if !w.sealed[poolID] {
			fenced = append(fenced, poolID)
		}
	}
	for poolID := range w.sealed {
		sealed = append(sealed, poolID)
	}
	slices.Sort(fenced)
	slices.Sort(sealed)
	return fenced, sealed
}

func (w *work) LiveCount(_ context.Context, _, poolID string) (int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := w.live[poolID]
	if w.closedPool != nil && w.closedPool(poolID) {
		n += w.lateLive[poolID]
	}
	return n, nil
}

func (w *work) PendingCount(_ context.Context, _, poolID string) (int64, int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued[poolID], 0, nil
}

func (w *work) CountAwaitingReview(_ context.Context, r *catalog.Resolved) (int, bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.review[r.Pool.GetPoolId()], true, nil
}

func (w *work) set(f func(*work)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
}

// component is the archive use case over the real catalog and pool
// transitions of a running gateway (which made the project and pools), with
// fake sources of unfinished work.
type component struct {
	env      *gatewaytest.Env
	catalog  *catalog.Catalog
	archiver *archive.Service
	work     *work
	key      string
	events   *events.Log
	box      *secretbox.Box
	client   *toloka.Client
}

// newComponent starts it; simHandler, when not nil, wraps the emulator's
// handler.
func newComponent(t *testing.T, simHandler ...func(http.Handler) http.Handler) *component {
	clk := fakeclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	encryptionKey := secretbox.NewRandomKey()
	opts := gatewaytest.Options{Clock: clk, Config: func(c *gateway.Config) {
		c.Secrets.Key = base64.StdEncoding.EncodeToString(encryptionKey)
	}}
	if len(simHandler) > 0 {
		opts.SimHandler = simHandler[0]
	}
	env := gatewaytest.Start(t, opts)
	box, err := secretbox.New(encryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	client, err := toloka.New(toloka.Config{
		SandboxURL: env.SimURL + "/api/v1", ProductionURL: env.SimURL + "/api/v1",
		Now: clk.Now, Sleep: clk.Sleep, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &component{env: env, work: newWork(), key: env.NewAPIKey("acme"), box: box, client: client}
	c.catalog, c.events, c.archiver = c.archiverOn(t, env.Redis.Client, events.Settings{})
	return c
}

// archiverOn builds the archive use case over the component's work and
// Toloka, with its catalog on rdb and its event log (with set) on the
// component's Redis.
func (c *component) archiverOn(t *testing.T, rdb redis.UniversalClient, set events.Settings) (*catalog.Catalog, *events.Log, *archive.Service) {
	t.Helper()
	env := c.env
	cat := catalog.New(rdb, env.Redis.Prefix, c.box, c.client, env.Clock.Now, slog.New(slog.DiscardHandler))
	evs, err := events.New(events.Config{Redis: env.Redis.Client, Prefix: env.Redis.Prefix, Now: env.Clock.Now, Settings: set})
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.New(cat, pool.NewTransitions(cat, evs, slog.New(slog.DiscardHandler)), c.work, c.work, c.work, evs, env.Clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return cat, evs, a
}

// newPool makes a project with one (closed) pool, and returns the pool.
func (c *component) newPool() *crowdgatev1.Pool {
	env, ctx := c.env, c.env.Ctx()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, c.key)))
	return env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
}

func TestNewRefusesAMissingSourceOfWork(t *testing.T) {
	c := newComponent(t)
	w := newWork()
	if _, err := archive.New(c.catalog, pool.NewTransitions(c.catalog, c.events, nil), nil, w, w, c.events, nil, nil); err == nil {
		t.Error("archive.New accepted a nil source of live sessions")
	}
	if _, err := archive.New(c.catalog, pool.NewTransitions(c.catalog, c.events, nil), w, w, w, nil, nil, nil); err == nil {
		t.Error("archive.New accepted no event log")
	}
}

func TestArchiveProjectWaitsForUnfinishedWork(t *testing.T) {
	c := newComponent(t)
	env, ctx, bg := c.env, c.env.Ctx(), context.Background()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, c.key)))
	open := env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	if _, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: open.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	closed := env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))

	// Unfinished work refuses the archive, says what is left, and changes
	// nothing.
	c.work.set(func(w *work) {
		w.live[open.GetPoolId()], w.queued[open.GetPoolId()], w.review[open.GetPoolId()] = 3, 2, 1
	})
	_, err := c.archiver.ArchiveProject(bg, tenant.Default, prj.GetProjectId())
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) {
		t.Fatalf("ArchiveProject with work left = %v, want FAILED_PRECONDITION", err)
	}
	for _, want := range []string{open.GetPoolId(), "3 live sessions", "2 submits not yet delivered", "1 assignment awaiting review"} {
		if !strings.Contains(fp.Message, want) {
			t.Errorf("refusal %q does not mention %q", fp.Message, want)
		}
	}
	if strings.Contains(fp.Message, closed.GetPoolId()) {
		t.Errorf("refusal %q names pool %s, which has nothing left", fp.Message, closed.GetPoolId())
	}
	if got := tolokaPoolStatus(t, env, c.key, open); got != toloka.PoolOpen {
		t.Errorf("after a refused archive the pool is %s in Toloka, want it still OPEN", got)
	}
	for _, path := range []string{"/close", "/archive"} {
		for _, r := range env.Requests(http.MethodPost, "/api/v1/") {
			if strings.HasSuffix(r.Path, path) {
				t.Errorf("a refused archive sent %s %s", r.Method, r.Path)
			}
		}
	}

	// Work that appears while the pools close (a Toloker who started
	// meanwhile) is caught by the second check: the pools stay closed.
	c.work.set(func(w *work) {
		w.live, w.queued, w.review = map[string]int64{}, map[string]int64{}, map[string]int{}
		w.lateLive[open.GetPoolId()] = 1
		w.closedPool = func(poolID string) bool {
			p, err := c.catalog.Pool(bg, tenant.Default, poolID)
			return err == nil && p.GetStatus() == crowdgatev1.PoolStatus_POOL_STATUS_CLOSED
		}
	})
	_, err = c.archiver.ArchiveProject(bg, tenant.Default, prj.GetProjectId())
	if !errors.As(err, &fp) || !strings.Contains(fp.Message, "1 live session") {
		t.Fatalf("ArchiveProject with a late session = %v, want FAILED_PRECONDITION naming 1 live session", err)
	}
	if got := tolokaPoolStatus(t, env, c.key, open); got != toloka.PoolClosed {
		t.Errorf("after the late refusal the pool is %s, want CLOSED (no new work)", got)
	}
	if fenced, sealed := c.work.fenced(); len(fenced)+len(sealed) > 0 {
		t.Errorf("after the late refusal pools %v are still fenced and %v sealed; want sessions free to start again", fenced, sealed)
	}

	// Done: every pool is closed and archived, then the project.
	c.work.set(func(w *work) { w.lateLive = map[string]int64{} })
	p, err := c.archiver.ArchiveProject(bg, tenant.Default, prj.GetProjectId())
	if err != nil {
		t.Fatalf("ArchiveProject with nothing left: %v", err)
	}
	if p.GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED || p.GetArchiveTime() == nil {
		t.Errorf("archived project = %v", p)
	}
	for _, pl := range []*crowdgatev1.Pool{open, closed} {
		if got := tolokaPoolStatus(t, env, c.key, pl); got != toloka.PoolArchived {
			t.Errorf("pool %s is %s in Toloka, want ARCHIVED", pl.GetPoolId(), got)
		}
	}
	wantSealed := []string{open.GetPoolId(), closed.GetPoolId()}
	slices.Sort(wantSealed)
	if _, sealed := c.work.fenced(); !slices.Equal(sealed, wantSealed) {
		t.Errorf("sealed pools %v, want both archived pools %v (no session may start in them)", sealed, wantSealed)
	}
	pools, err := env.Pools.ListPools(ctx, &crowdgatev1.ListPoolsRequest{ProjectId: prj.GetProjectId(), Status: crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED})
	if err != nil || len(pools.GetPools()) != 2 {
		t.Errorf("archived pools listed = %v, %v; want both", pools, err)
	}
	tp, err := account(t, env, c.key).GetProject(bg, prj.GetTolokaProjectId())
	if err != nil || tp.Status != toloka.ProjectArchived {
		t.Errorf("project in Toloka = %v, %v; want ARCHIVED", tp, err)
	}
	list, err := env.Projects.ListProjects(ctx, &crowdgatev1.ListProjectsRequest{Status: crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED})
	if err != nil || len(list.GetProjects()) != 1 {
		t.Errorf("ListProjects ARCHIVED = %v, %v", list, err)
	}

	// Archiving again is a no-op; an archived project takes no pools; another
	// tenant's project is not found.
	if _, err := c.archiver.ArchiveProject(bg, tenant.Default, prj.GetProjectId()); err != nil {
		t.Errorf("second ArchiveProject: %v", err)
	}
	_, err = env.Pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: gatewaytest.ValidPool(prj.GetProjectId(), env.Now())})
	gatewaytest.WantCode(t, err, codes.FailedPrecondition)
	_, err = env.Projects.ArchiveProject(gatewaytest.As("globex"), &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.GetProjectId()})
	gatewaytest.WantCode(t, err, codes.NotFound)
}

// ArchivePool follows the same rule as ArchiveProject.
func TestArchivePoolWaitsForUnfinishedWork(t *testing.T) {
	c := newComponent(t)
	env, ctx, bg := c.env, c.env.Ctx(), context.Background()
	p := c.newPool()
	c.work.set(func(w *work) { w.queued[p.GetPoolId()] = 1 })
	_, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId())
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) || !strings.Contains(fp.Message, "1 submit not yet delivered") {
		t.Fatalf("ArchivePool with a queued submit = %v, want FAILED_PRECONDITION naming it", err)
	}
	c.work.set(func(w *work) { w.queued = map[string]int64{} })

	// An open pool is refused before it is fenced: its Tolokers keep
	// landing.
	if _, err := env.Pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId()); !errors.As(err, &fp) || !strings.Contains(fp.Message, "OPEN") {
		t.Fatalf("ArchivePool of an open pool = %v, want FAILED_PRECONDITION saying it is OPEN", err)
	}
	if fenced, sealed := c.work.fenced(); len(fenced)+len(sealed) > 0 {
		t.Errorf("after refusing an open pool, pools %v are fenced and %v sealed; want none", fenced, sealed)
	}
	if _, err := env.Pools.ClosePool(ctx, &crowdgatev1.ClosePoolRequest{PoolId: p.GetPoolId()}); err != nil {
		t.Fatal(err)
	}
	got, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId())
	if err != nil || got.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED {
		t.Fatalf("ArchivePool with nothing left = %v, %v", got, err)
	}
}

func account(t *testing.T, env *gatewaytest.Env, key string) *toloka.Account {
	t.Helper()
	client, err := toloka.New(toloka.Config{SandboxURL: env.SimURL + "/api/v1", ProductionURL: env.SimURL + "/api/v1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := client.Account(toloka.Credential{Environment: toloka.Sandbox, Token: key})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// tolokaPoolStatus reads a pool's status in the emulator.
func tolokaPoolStatus(t *testing.T, env *gatewaytest.Env, key string, p *crowdgatev1.Pool) toloka.PoolStatus {
	t.Helper()
	tp, err := account(t, env, key).GetPool(context.Background(), p.GetTolokaPoolId())
	if err != nil {
		t.Fatal(err)
	}
	return tp.Status
}

// The pools' fences are renewed, and their live sessions counted again,
// just before each pool is archived: a session that started while a fence
// was lost (expired during a slow check, or lost to a Redis failover)
// refuses the archive, and that pool is not archived.
func TestArchiveCountsLiveSessionsAgainJustBeforeEachPool(t *testing.T) {
	c := newComponent(t)
	env, bg := c.env, context.Background()
	p := c.newPool()
	c.work.set(func(w *work) {
		w.lostFence = func(poolID string, call int) int64 {
			if poolID == p.GetPoolId() && call == 2 {
				return 1
			}
			return 0
		}
	})
	_, err := c.archiver.ArchiveProject(bg, tenant.Default, p.GetProjectId())
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) || !strings.Contains(fp.Message, "1 live session") {
		t.Fatalf("ArchiveProject with a session counted at the second fence = %v, want FAILED_PRECONDITION naming 1 live session", err)
	}
	if got := tolokaPoolStatus(t, env, c.key, p); got == toloka.PoolArchived {
		t.Errorf("the pool was archived in Toloka with a live session")
	}
	if fenced, sealed := c.work.fenced(); len(fenced)+len(sealed) > 0 {
		t.Errorf("after the refusal pools %v are still fenced and %v sealed", fenced, sealed)
	}
}

// When Toloka does not answer the archive of a pool (it may archive it
// yet), the pool stays fenced until its fence expires, rather than letting
// a Toloker start in a pool about to be archived; the archive fails
// UNAVAILABLE, and the next archive takes the fence over and seals it.
func TestAPoolWhoseArchiveIsUnknownStaysFenced(t *testing.T) {
	c := newComponent(t)
	env, bg := c.env, context.Background()
	p := c.newPool()
	if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/pools/" + p.GetTolokaPoolId() + "/archive", FailNext: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	_, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId())
	var unavailable *serviceerror.Unavailable
	if !errors.As(err, &unavailable) {
		t.Fatalf("ArchivePool when Toloka does not answer = %v, want UNAVAILABLE", err)
	}
	if fenced, _ := c.work.fenced(); !slices.Equal(fenced, []string{p.GetPoolId()}) {
		t.Errorf("fenced pools %v after an unknown archive, want %s kept fenced", fenced, p.GetPoolId())
	}
	c.work.mu.Lock()
	holder := c.work.fences[p.GetPoolId()]
	c.work.mu.Unlock()
	if holder != "unsettled" {
		t.Errorf("the fence after an unknown archive is %q's, want it handed over (unsettled)", holder)
	}
	env.Sim.ClearFaults()
	if _, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId()); err != nil {
		t.Fatalf("ArchivePool again: %v", err)
	}
	if _, sealed := c.work.fenced(); !slices.Equal(sealed, []string{p.GetPoolId()}) {
		t.Errorf("sealed pools %v, want %s", sealed, p.GetPoolId())
	}
}

// A pool Toloka surely did not archive has its fence lifted as soon as the
// archive fails, rather than keeping its Tolokers out for FenceTTL: Toloka
// refused the archive request, reported the archive operation failed, or
// could not be asked about the pool at all.
func TestAPoolTolokaDidNotArchiveIsUnfenced(t *testing.T) {
	for _, tc := range []struct {
		name   string
		faults func(tolokaPoolID string) tolokasim.Faults
		// failOps answers every operation read with a failed operation.
		failOps bool
	}{
		{name: "archive refused", faults: func(id string) tolokasim.Faults {
			return tolokasim.Faults{PathPrefix: "/api/v1/pools/" + id + "/archive", ErrorRates: map[int]float64{http.StatusForbidden: 1}}
		}},
		{name: "pool unreadable", faults: func(id string) tolokasim.Faults {
			// The pool is read before the archive is asked for.
			return tolokasim.Faults{PathPrefix: "/api/v1/pools/" + id, FailNext: 1 << 20}
		}},
		{name: "archive operation failed", failOps: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failOps atomic.Bool
			c := newComponent(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/operations/"); ok && failOps.Load() {
						w.Header().Set("Content-Type", "application/json")
						fmt.Fprintf(w, `{"id":%q,"type":"POOL.ARCHIVE","status":"FAIL","submitted":"2026-03-01T12:00:00","details":{"message":"pool is open"}}`, id)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			env, bg := c.env, context.Background()
			p := c.newPool()
			if tc.faults != nil {
				if err := env.Sim.SetFaults(tc.faults(p.GetTolokaPoolId())); err != nil {
					t.Fatal(err)
				}
			}
			failOps.Store(tc.failOps)
			if _, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId()); err == nil {
				t.Fatal("ArchivePool succeeded while Toloka failed")
			} else if !errors.Is(err, pool.ErrNotArchived) {
				t.Errorf("ArchivePool = %v, want an error saying the pool is not archived", err)
			}
			if fenced, sealed := c.work.fenced(); len(fenced)+len(sealed) > 0 {
				t.Errorf("after Toloka did not archive the pool, pools %v are fenced and %v sealed; want none", fenced, sealed)
			}
			env.Sim.ClearFaults()
			failOps.Store(false)
			if _, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId()); err != nil {
				t.Fatalf("ArchivePool again: %v", err)
			}
			if _, sealed := c.work.fenced(); !slices.Equal(sealed, []string{p.GetPoolId()}) {
				t.Errorf("sealed pools %v, want %s", sealed, p.GetPoolId())
			}
		})
	}
}

// A refusal that may be Toloka's answer to an archive already made or
// under way leaves the outcome unknown, and the pool fenced: a refusal of
// a retried request (the first one's answer lost), and a 409 (an archive
// operation already running, started by an earlier archive whose fence is
// gone).
func TestARefusalThatMayFollowAnArchiveLeavesThePoolFenced(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failNext int
		status   int
		attempts string
	}{
		{"a refusal of a retry", 1, http.StatusForbidden, "after 2 attempts"},
		{"a conflict", 0, http.StatusConflict, "HTTP 409"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newComponent(t)
			env, bg := c.env, context.Background()
			p := c.newPool()
			// failNext requests fail with 503 (retried), then each is refused.
			if err := env.Sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/pools/" + p.GetTolokaPoolId() + "/archive",
				FailNext: tc.failNext, ErrorRates: map[int]float64{tc.status: 1}}); err != nil {
				t.Fatal(err)
			}
			_, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId())
			if err == nil || errors.Is(err, pool.ErrNotArchived) {
				t.Fatalf("ArchivePool = %v, want an error of unknown outcome", err)
			}
			if !strings.Contains(err.Error(), tc.attempts) {
				t.Fatalf("ArchivePool = %v, want %q", err, tc.attempts)
			}
			if fenced, _ := c.work.fenced(); !slices.Equal(fenced, []string{p.GetPoolId()}) {
				t.Errorf("fenced pools %v, want %s kept fenced", fenced, p.GetPoolId())
			}
		})
	}
}

// A fence whose answer is lost (the call failed after Redis set it) is
// lifted when the archive gives up, rather than keeping the pool's
// Tolokers out until it expires.
func TestAFenceWhoseAnswerIsLostIsLifted(t *testing.T) {
	c := newComponent(t)
	bg := context.Background()
	p := c.newPool()
	c.work.set(func(w *work) { w.fenceAnswerLost = true })
	if _, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId()); err == nil {
		t.Fatal("ArchivePool whose fence failed succeeded")
	}
	if fenced, sealed := c.work.fenced(); len(fenced)+len(sealed) > 0 {
		t.Errorf("after the failed fence, pools %v are fenced and %v sealed; want none", fenced, sealed)
	}
}

// Toloka does not archive a training while a pool that is not archived
// links to it through quality_control.training_requirement
// (toloka-api-facts, Trainings: "Archive needs it closed and its linked
// pools archived"). ArchivePool of such a TRAINING pool is refused as
// FAILED_PRECONDITION naming the linked pools: before Toloka is asked when
// Crowdgate's records show the link, and from Toloka's 409 when they do
// not (a pool made outside Crowdgate). Either refusal leaves no fence: the
// training is surely not archived, and must not be kept from Tolokers for
// FenceTTL. Once the linked pools are archived, the training is, and
// ArchiveProject archives the linked pools before the training.
func TestATrainingLinkedFromAnUnarchivedPoolIsRefusedWithoutAFence(t *testing.T) {
	c := newComponent(t)
	env, ctx, bg := c.env, c.env.Ctx(), context.Background()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, c.key)))
	tr := env.MustPool(ctx, &crowdgatev1.Pool{
		ProjectId: prj.GetProjectId(), PrivateName: "Training", Type: crowdgatev1.PoolType_POOL_TYPE_TRAINING,
		RewardPerAssignment: "0", AssignmentMaxDurationSeconds: 300,
		Training: &crowdgatev1.TrainingSettings{TrainingTasksInTaskSuiteCount: 5},
	})
	linked := func(trainingPoolID string) *crowdgatev1.Pool {
		p := gatewaytest.ValidPool(prj.GetProjectId(), env.Now())
		p.QualityControl = &crowdgatev1.PoolQualityControl{TrainingRequirement: &crowdgatev1.TrainingRequirement{
			TrainingPoolId: trainingPoolID, TrainingPassingSkillValue: 80}}
		return env.MustPool(ctx, p)
	}
	byID, byTolokaID := linked(tr.GetPoolId()), linked(tr.GetTolokaPoolId())
	archiveURL := "/api/v1/trainings/" + tr.GetTolokaPoolId() + "/archive"

	_, err := c.archiver.ArchivePool(bg, tenant.Default, tr.GetPoolId())
	var fp *serviceerror.FailedPrecondition
	if !errors.As(err, &fp) || !strings.Contains(err.Error(), byID.GetPoolId()) || !strings.Contains(err.Error(), byTolokaID.GetPoolId()) {
		t.Errorf("ArchivePool(training linked from %s and %s) = %v, want FAILED_PRECONDITION naming both", byID.GetPoolId(), byTolokaID.GetPoolId(), err)
	}
	if n := len(env.Requests(http.MethodPost, archiveURL)); n != 0 {
		t.Errorf("the training's archive was sent to Toloka %d times, though Crowdgate knew of the links", n)
	}
	if fenced, sealed := c.work.fenced(); len(fenced)+len(sealed) > 0 {
		t.Errorf("after a refused archive, pools %v are fenced and %v sealed; want none", fenced, sealed)
	}

	for _, p := range []*crowdgatev1.Pool{byID, byTolokaID} {
		if _, err := c.archiver.ArchivePool(bg, tenant.Default, p.GetPoolId()); err != nil {
			t.Fatalf("ArchivePool(%s) = %v", p.GetPoolId(), err)
		}
	}
	// A pool made in Toloka alone links to the training: Toloka's 409.
	body := `{"project_id":"` + prj.GetTolokaProjectId() + `","private_name":"outside","may_contain_adult_content":false,
		"will_expire":"` + env.Now().Add(24*time.Hour).UTC().Format("2006-01-02T15:04:05") + `","reward_per_assignment":0.05,
		"defaults":{"default_overlap_for_new_task_suites":1},"assignment_max_duration_seconds":600,
		"quality_control":{"training_requirement":{"training_pool_id":"` + tr.GetTolokaPoolId() + `","training_passing_skill_value":80}}}`
	req, _ := http.NewRequest(http.MethodPost, env.SimURL+"/api/v1/pools", strings.NewReader(body))
	req.Header.Set("Authorization", "ApiKey "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a pool in Toloka alone: %v %v", resp, err)
	}
	resp.Body.Close()
	_, err = c.archiver.ArchivePool(bg, tenant.Default, tr.GetPoolId())
	if !errors.As(err, &fp) || !errors.Is(err, pool.ErrNotArchived) {
		t.Errorf("ArchivePool(training linked from a pool made in Toloka) = %v, want FAILED_PRECONDITION, surely not archived", err)
	}
	if fenced, sealed := c.work.fenced(); !slices.Equal(sealed, []string{byID.GetPoolId(), byTolokaID.GetPoolId()}) || len(fenced) > 0 {
		t.Errorf("after Toloka refused the training's archive, pools %v are fenced and %v sealed; want only the two linked pools sealed", fenced, sealed)
	}
}

// ArchiveProject archives a project whose pool links to its training: the
// pool first, then the training (Toloka refuses the other order), even
// when the training is newer than the pool (the catalog lists pools newest
// first): here the pool is made first and linked to the training later.
func TestArchiveProjectArchivesATrainingAfterThePoolsLinkedToIt(t *testing.T) {
	c := newComponent(t)
	env, ctx, bg := c.env, c.env.Ctx(), context.Background()
	prj := env.MustProject(ctx, gatewaytest.MinimalProject(env.MustCredential(ctx, c.key)))
	p := env.MustPool(ctx, gatewaytest.ValidPool(prj.GetProjectId(), env.Now()))
	tr := env.MustPool(ctx, &crowdgatev1.Pool{
		ProjectId: prj.GetProjectId(), PrivateName: "Training", Type: crowdgatev1.PoolType_POOL_TYPE_TRAINING,
		RewardPerAssignment: "0", AssignmentMaxDurationSeconds: 300,
		Training: &crowdgatev1.TrainingSettings{TrainingTasksInTaskSuiteCount: 5},
	})
	_, err := env.Pools.UpdatePool(ctx, &crowdgatev1.UpdatePoolRequest{
		Pool: &crowdgatev1.Pool{PoolId: p.GetPoolId(), QualityControl: &crowdgatev1.PoolQualityControl{
			TrainingRequirement: &crowdgatev1.TrainingRequirement{TrainingPoolId: tr.GetPoolId(), TrainingPassingSkillValue: 80}}},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"quality_control"}},
	})
	if err != nil {
		t.Fatalf("linking pool %s to training %s: %v", p.GetPoolId(), tr.GetPoolId(), err)
	}
	got, err := c.archiver.ArchiveProject(bg, tenant.Default, prj.GetProjectId())
	if err != nil || got.GetStatus() != crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		t.Fatalf("ArchiveProject(project with a training and a pool linked to it) = %v, %v", got, err)
	}
}

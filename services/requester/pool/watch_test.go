package pool_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
)

// Three replicas poll at the same time: the tenant's open pool is read
// from Toloka once, not once per replica (each read spends the
// requester's quota); another tenant's turn is its own.
func TestOneReplicaPollsATenantsPoolsPerInterval(t *testing.T) {
	ctx := context.Background()
	env := sessiontest.New(t, sessiontest.Options{})
	acme, globex := env.NewPool(t, "acme", nil), env.NewPool(t, "globex", nil)
	reads := func() map[string]int {
		return map[string]int{
			"acme":   len(env.Sim.Requests("/api/v1/pools/" + acme.GetTolokaPoolId())),
			"globex": len(env.Sim.Requests("/api/v1/pools/" + globex.GetTolokaPoolId())),
		}
	}
	before := reads()
	tenants := func(context.Context) ([]string, error) { return []string{"acme", "globex"}, nil }
	var wg sync.WaitGroup
	for range 3 {
		replica := pool.NewTransitions(env.Catalog, env.Events, nil)
		wg.Go(func() { replica.Poll(ctx, tenants, time.Minute) })
	}
	wg.Wait()
	after := reads()
	for _, tenantID := range []string{"acme", "globex"} {
		if n := after[tenantID] - before[tenantID]; n != 1 {
			t.Errorf("%s's open pool was read %d times by three replicas polling at once, want 1", tenantID, n)
		}
	}
}

// tolokaHook is a transport for a test's Toloka client: it fails reads of
// one pool or of operations while told to, and runs after, once, when a
// read of the pool has its answer (before the caller gets it).
type tolokaHook struct {
	mu              sync.Mutex
	path            string
	failPoolReads   bool
	failOperations  bool
	afterPoolAnswer func()
}

func (h *tolokaHook) set(f func(h *tolokaHook)) { h.mu.Lock(); f(h); h.mu.Unlock() }

func (h *tolokaHook) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	poolRead := r.Method == http.MethodGet && r.URL.Path == h.path
	fail := (poolRead && h.failPoolReads) || (r.Method == http.MethodGet && h.failOperations && strings.HasPrefix(r.URL.Path, "/api/v1/operations/"))
	var after func()
	if poolRead && !fail {
		after, h.afterPoolAnswer = h.afterPoolAnswer, nil
	}
	h.mu.Unlock()
	if fail {
		return nil, errors.New("connection reset by peer")
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if after != nil {
		after()
	}
	return resp, err
}

// hookedPool is tenant acme's open pool, whose Toloka client goes through
// hook (aimed at the pool), with the transitions and the watch.
type hookedPool struct {
	ctx  context.Context
	env  *sessiontest.Env
	hook *tolokaHook
	p    *crowdgatev1.Pool
	tr   *pool.Transitions
}

func newHookedPool(t *testing.T) *hookedPool {
	hook := &tolokaHook{}
	env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) {
		c.HTTPClient = &http.Client{Transport: hook}
		c.Retry.BaseBackoff = time.Millisecond
	}})
	p := env.NewPool(t, "acme", nil)
	hook.set(func(h *tolokaHook) { h.path = "/api/v1/pools/" + p.GetTolokaPoolId() })
	return &hookedPool{ctx: context.Background(), env: env, hook: hook, p: p, tr: pool.NewTransitions(env.Catalog, env.Events, nil)}
}

// close closes the pool through Crowdgate.
func (h *hookedPool) close(t *testing.T) {
	t.Helper()
	if _, err := h.tr.Close(h.ctx, "acme", h.p.GetPoolId()); err != nil {
		t.Fatal(err)
	}
}

// poll is one pass of the watch.
func (h *hookedPool) poll() {
	h.tr.Poll(h.ctx, func(context.Context) ([]string, error) { return []string{"acme"}, nil }, time.Minute)
}

// stored is the pool as the catalog holds it.
func (h *hookedPool) stored(t *testing.T) *crowdgatev1.Pool {
	t.Helper()
	p, err := h.env.Catalog.Pool(h.ctx, "acme", h.p.GetPoolId())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// marks are the tenant's pools marked to be read again.
func (h *hookedPool) marks() map[string]string {
	m, _ := h.env.Catalog.PoolsToReread(h.ctx, "acme")
	return m
}

// TestAPoolWhoseOpenCouldNotBeReadBackIsWatched: Toloka opens a pool but
// Crowdgate's read of it afterwards fails, so the stored pool stays
// CLOSED. The watch, which reads only open pools, used to skip it: no
// pool.opened, and no pool.closed when Toloka later closed it on its own.
// The pool is marked to be read, and the next poll stores and records it.
func TestAPoolWhoseOpenCouldNotBeReadBackIsWatched(t *testing.T) {
	h := newHookedPool(t)
	h.close(t)
	h.hook.set(func(k *tolokaHook) { k.failPoolReads = true })
	if _, err := h.tr.Open(h.ctx, "acme", h.p.GetPoolId()); err == nil {
		t.Fatal("Open succeeded while its pool could not be read back")
	}
	h.hook.set(func(k *tolokaHook) { k.failPoolReads = false })
	if st := h.stored(t).GetStatus(); st != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED {
		t.Fatalf("stored status %v before the poll, want CLOSED (the read back failed)", st)
	}
	h.poll()
	if st := h.stored(t).GetStatus(); st != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
		t.Errorf("stored status %v after the poll, want OPEN", st)
	}
	evs, _, err := h.env.Events.List(h.ctx, "acme", events.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// The close recorded pool.closed; the open must be recorded after it.
	var types []string
	closed, opened := -1, -1
	for i, ev := range evs {
		types = append(types, ev.GetType())
		switch ev.GetType() {
		case events.TypePoolClosed:
			closed = i
		case events.TypePoolOpened:
			opened = i
		}
	}
	if closed < 0 || opened < closed {
		t.Errorf("events %v: want pool.closed, then pool.opened", types)
	}
	if marked := h.marks(); len(marked) != 0 {
		t.Errorf("pools still marked to read after a poll read them: %v", marked)
	}
}

// TestARefreshKeepsAnUpdateStoredWhileTolokaWasRead: the watch reads a pool
// Toloka closed on its own; while Toloka answers, an update of the pool
// is stored. The refresh used to store the copy it read before, with the
// new status, and the update was lost. It applies the status to the pool
// as stored then.
func TestARefreshKeepsAnUpdateStoredWhileTolokaWasRead(t *testing.T) {
	h := newHookedPool(t)
	r, err := h.env.Catalog.ResolvePool(h.ctx, "acme", h.p.GetPoolId())
	if err != nil {
		t.Fatal(err)
	}
	// Toloka closes the pool on its own (Crowdgate is not asked).
	op, err := r.Account.ClosePool(h.ctx, h.p.GetTolokaPoolId())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Account.WaitOperation(h.ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	read := false
	h.hook.set(func(k *tolokaHook) {
		k.afterPoolAnswer = func() {
			read = true
			rename := func(p *crowdgatev1.Pool) (*crowdgatev1.Pool, bool, error) {
				p.PrivateName = "renamed while Toloka was read"
				return p, true, nil
			}
			if _, err := h.env.Catalog.ChangePool(h.ctx, "acme", h.p.GetPoolId(), rename); err != nil {
				t.Error(err)
			}
		}
	})
	h.poll()
	if !read {
		t.Fatal("the watch did not read the pool")
	}
	stored := h.stored(t)
	if stored.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED || stored.GetPrivateName() != "renamed while Toloka was read" {
		t.Errorf("stored pool: status %v, private_name %q; want CLOSED and the update's name", stored.GetStatus(), stored.GetPrivateName())
	}
}

// TestAPoolTolokaMayHaveChangedIsReadByTheWatch: whenever an open went
// out to Toloka and the call failed after it, the pool is read by the
// next polls until a read succeeds, so its stored status catches up with
// Toloka's (the review's three ways round the first version: the
// operation not waited for, the caller gone while the result was read
// back, and an open whose mark the watch cleared because it was made
// while the watch read the pool).
func TestAPoolTolokaMayHaveChangedIsReadByTheWatch(t *testing.T) {
	for _, tc := range []string{"operation not waited for", "caller gone during the read back", "opened while the watch read it"} {
		t.Run(tc, func(t *testing.T) {
			h := newHookedPool(t)
			h.close(t)
			failedOpen := func(ctx context.Context) {
				if _, err := h.tr.Open(ctx, "acme", h.p.GetPoolId()); err == nil {
					t.Error("Open succeeded")
				}
			}
			switch tc {
			case "operation not waited for":
				h.hook.set(func(k *tolokaHook) { k.failOperations = true })
				failedOpen(h.ctx)
				h.hook.set(func(k *tolokaHook) { k.failOperations = false })
			case "caller gone during the read back":
				cctx, cancel := context.WithCancel(h.ctx)
				h.hook.set(func(k *tolokaHook) { k.afterPoolAnswer = cancel })
				failedOpen(cctx)
			case "opened while the watch read it":
				// A mark from before; the watch reads the pool (CLOSED), and
				// an open runs (its read back failing) before it stores.
				if err := h.env.Catalog.MarkPoolToReread(h.ctx, "acme", h.p.GetPoolId()); err != nil {
					t.Fatal(err)
				}
				h.hook.set(func(k *tolokaHook) {
					k.afterPoolAnswer = func() {
						h.hook.set(func(k *tolokaHook) { k.failPoolReads = true })
						failedOpen(h.ctx)
						h.hook.set(func(k *tolokaHook) { k.failPoolReads = false })
					}
				})
				h.poll() // stores its read from before the open
				// The open's mark outlives that read (the first version
				// cleared it): the next poll, at the tenant's next turn,
				// reads the pool.
				if marked := h.marks(); marked[h.p.GetPoolId()] == "" {
					t.Fatalf("the open's mark was cleared by a read from before it: %v", marked)
				}
				return
			}
			h.poll()
			if st := h.stored(t).GetStatus(); st != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
				t.Errorf("stored status %v after the poll, want OPEN (Toloka opened it)", st)
			}
			if marked := h.marks(); len(marked) != 0 {
				t.Errorf("still marked after a poll read it: %v", marked)
			}
		})
	}
}

// TestAReadFromBeforeAnArchiveDoesNotUndoIt: the watch reads a pool
// (CLOSED); an archive completes and stores ARCHIVED before the watch
// stores its read. The read used to store CLOSED over ARCHIVED (an
// archive moves no timestamp), and nothing read the pool again.
func TestAReadFromBeforeAnArchiveDoesNotUndoIt(t *testing.T) {
	h := newHookedPool(t)
	h.close(t)
	if err := h.env.Catalog.MarkPoolToReread(h.ctx, "acme", h.p.GetPoolId()); err != nil {
		t.Fatal(err)
	}
	h.hook.set(func(k *tolokaHook) {
		k.afterPoolAnswer = func() {
			if _, err := h.tr.Archive(h.ctx, "acme", h.p.GetPoolId()); err != nil {
				t.Errorf("archive: %v", err)
			}
		}
	})
	h.poll()
	if st := h.stored(t).GetStatus(); st != crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED {
		t.Errorf("stored %v after a read from before the archive, want ARCHIVED", st)
	}
}

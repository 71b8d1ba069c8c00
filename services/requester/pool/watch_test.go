package pool_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// failingPoolReads fails every GET of one Toloka pool while on: Toloka
// carries an action out, and its result cannot be read back.
type failingPoolReads struct {
	path string
	on   atomic.Bool
}

func (f *failingPoolReads) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.on.Load() && r.Method == http.MethodGet && r.URL.Path == f.path {
		return nil, errors.New("connection reset by peer")
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestAPoolWhoseOpenCouldNotBeReadBackIsWatched: Toloka opens a pool but
// Crowdgate's read of it afterwards fails, so the stored pool stays
// CLOSED. The watch, which reads only open pools, used to skip it: no
// pool.opened, and no pool.closed when Toloka later closed it on its own.
// The pool is marked to be read, and the next poll stores and records it.
func TestAPoolWhoseOpenCouldNotBeReadBackIsWatched(t *testing.T) {
	ctx := context.Background()
	reads := &failingPoolReads{}
	env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) {
		c.HTTPClient = &http.Client{Transport: reads}
		c.Retry.BaseBackoff = time.Millisecond
	}})
	p := env.NewPool(t, "acme", nil)
	tr := pool.NewTransitions(env.Catalog, env.Events, nil)
	if _, err := tr.Close(ctx, "acme", p.GetPoolId()); err != nil {
		t.Fatal(err)
	}
	reads.path = "/api/v1/pools/" + p.GetTolokaPoolId()
	reads.on.Store(true)
	if _, err := tr.Open(ctx, "acme", p.GetPoolId()); err == nil {
		t.Fatal("Open succeeded while its pool could not be read back")
	}
	reads.on.Store(false)
	if stored, _ := env.Catalog.Pool(ctx, "acme", p.GetPoolId()); stored.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED {
		t.Fatalf("stored status %v before the poll, want CLOSED (the read back failed)", stored.GetStatus())
	}
	tr.Poll(ctx, func(context.Context) ([]string, error) { return []string{"acme"}, nil }, time.Minute)
	if stored, _ := env.Catalog.Pool(ctx, "acme", p.GetPoolId()); stored.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
		t.Errorf("stored status %v after the poll, want OPEN", stored.GetStatus())
	}
	evs, _, err := env.Events.List(ctx, "acme", events.Query{Limit: 100})
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
	if marked, _ := env.Catalog.PoolsToReread(ctx, "acme"); len(marked) != 0 {
		t.Errorf("pools still marked to read after a poll read them: %v", marked)
	}
}

// duringPoolRead runs a function once, while Toloka is asked for one
// pool, before the request goes out.
type duringPoolRead struct {
	path string
	once func()
}

func (d *duringPoolRead) RoundTrip(r *http.Request) (*http.Response, error) {
	if f := d.once; f != nil && r.Method == http.MethodGet && r.URL.Path == d.path {
		d.once = nil
		f()
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestARefreshKeepsAnUpdateStoredWhileTolokaWasRead: the watch reads a pool
// Toloka closed on its own; while Toloka answers, an update of the pool
// is stored. The refresh used to store the copy it read before, with the
// new status, and the update was lost. It applies the status to the pool
// as stored then.
func TestARefreshKeepsAnUpdateStoredWhileTolokaWasRead(t *testing.T) {
	ctx := context.Background()
	hook := &duringPoolRead{}
	env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) {
		c.HTTPClient = &http.Client{Transport: hook}
	}})
	p := env.NewPool(t, "acme", nil)
	r, err := env.Catalog.ResolvePool(ctx, "acme", p.GetPoolId())
	if err != nil {
		t.Fatal(err)
	}
	// Toloka closes the pool on its own (Crowdgate is not asked).
	op, err := r.Account.ClosePool(ctx, p.GetTolokaPoolId())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Account.WaitOperation(ctx, op.ID); err != nil {
		t.Fatal(err)
	}
	hook.path = "/api/v1/pools/" + p.GetTolokaPoolId()
	hook.once = func() {
		stored, err := env.Catalog.Pool(ctx, "acme", p.GetPoolId())
		if err != nil {
			t.Error(err)
			return
		}
		stored.PrivateName = "renamed while Toloka was read"
		if err := env.Catalog.PutPool(ctx, stored); err != nil {
			t.Error(err)
		}
	}
	tr := pool.NewTransitions(env.Catalog, env.Events, nil)
	tr.Poll(ctx, func(context.Context) ([]string, error) { return []string{"acme"}, nil }, time.Minute)
	if hook.once != nil {
		t.Fatal("the watch did not read the pool")
	}
	stored, err := env.Catalog.Pool(ctx, "acme", p.GetPoolId())
	if err != nil {
		t.Fatal(err)
	}
	if stored.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_CLOSED || stored.GetPrivateName() != "renamed while Toloka was read" {
		t.Errorf("stored pool: status %v, private_name %q; want CLOSED and the update's name", stored.GetStatus(), stored.GetPrivateName())
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
			ctx := context.Background()
			hook := &tolokaHook{}
			env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) {
				c.HTTPClient = &http.Client{Transport: hook}
				c.Retry.BaseBackoff = time.Millisecond
			}})
			p := env.NewPool(t, "acme", nil)
			tr := pool.NewTransitions(env.Catalog, env.Events, nil)
			if _, err := tr.Close(ctx, "acme", p.GetPoolId()); err != nil {
				t.Fatal(err)
			}
			hook.set(func(h *tolokaHook) { h.path = "/api/v1/pools/" + p.GetTolokaPoolId() })
			poll := func() {
				tr.Poll(ctx, func(context.Context) ([]string, error) { return []string{"acme"}, nil }, time.Minute)
			}
			failedOpen := func(ctx context.Context) {
				if _, err := tr.Open(ctx, "acme", p.GetPoolId()); err == nil {
					t.Error("Open succeeded")
				}
			}
			switch tc {
			case "operation not waited for":
				hook.set(func(h *tolokaHook) { h.failOperations = true })
				failedOpen(ctx)
				hook.set(func(h *tolokaHook) { h.failOperations = false })
			case "caller gone during the read back":
				cctx, cancel := context.WithCancel(ctx)
				hook.set(func(h *tolokaHook) { h.afterPoolAnswer = cancel })
				failedOpen(cctx)
			case "opened while the watch read it":
				// A mark from before; the watch reads the pool (CLOSED), and
				// an open runs (its read back failing) before it stores.
				if err := env.Catalog.MarkPoolToReread(ctx, "acme", p.GetPoolId()); err != nil {
					t.Fatal(err)
				}
				hook.set(func(h *tolokaHook) {
					h.afterPoolAnswer = func() {
						hook.set(func(h *tolokaHook) { h.failPoolReads = true })
						failedOpen(ctx)
						hook.set(func(h *tolokaHook) { h.failPoolReads = false })
					}
				})
				poll() // stores its read from before the open
				// The open's mark outlives that read (the first version
				// cleared it): the next poll, at the tenant's next turn,
				// reads the pool.
				if marked, _ := env.Catalog.PoolsToReread(ctx, "acme"); marked[p.GetPoolId()] == "" {
					t.Fatalf("the open's mark was cleared by a read from before it: %v", marked)
				}
				return
			}
			poll()
			if stored, _ := env.Catalog.Pool(ctx, "acme", p.GetPoolId()); stored.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_OPEN {
				t.Errorf("stored status %v after the poll, want OPEN (Toloka opened it)", stored.GetStatus())
			}
			if marked, _ := env.Catalog.PoolsToReread(ctx, "acme"); len(marked) != 0 {
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
	ctx := context.Background()
	hook := &tolokaHook{}
	env := sessiontest.New(t, sessiontest.Options{Toloka: func(c *toloka.Config) { c.HTTPClient = &http.Client{Transport: hook} }})
	p := env.NewPool(t, "acme", nil)
	tr := pool.NewTransitions(env.Catalog, env.Events, nil)
	if _, err := tr.Close(ctx, "acme", p.GetPoolId()); err != nil {
		t.Fatal(err)
	}
	if err := env.Catalog.MarkPoolToReread(ctx, "acme", p.GetPoolId()); err != nil {
		t.Fatal(err)
	}
	hook.set(func(h *tolokaHook) {
		h.path = "/api/v1/pools/" + p.GetTolokaPoolId()
		h.afterPoolAnswer = func() {
			if _, err := tr.Archive(ctx, "acme", p.GetPoolId()); err != nil {
				t.Errorf("archive: %v", err)
			}
		}
	})
	tr.Poll(ctx, func(context.Context) ([]string, error) { return []string{"acme"}, nil }, time.Minute)
	if stored, _ := env.Catalog.Pool(ctx, "acme", p.GetPoolId()); stored.GetStatus() != crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED {
		t.Errorf("stored %v after a read from before the archive, want ARCHIVED", stored.GetStatus())
	}
}

package storage

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

// gate holds every pipeline until it is opened, and counts them; a new
// connection's own setup (go-redis's pipeline of HELLO, SELECT, CLIENT
// SETINFO, whose commands depend on the test Redis's URL) passes by
// uncounted.
type gate struct {
	open      chan struct{}
	pipelines atomic.Int64
}

func (g *gate) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (g *gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (g *gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if connectionSetup(cmds) {
			return next(ctx, cmds)
		}
		g.pipelines.Add(1)
		<-g.open
		return next(ctx, cmds)
	}
}

// connectionSetup reports whether cmds are only commands go-redis sends
// when it opens a connection.
func connectionSetup(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		switch c.Name() {
		case "hello", "auth", "select", "client", "readonly":
		default:
			return false
		}
	}
	return len(cmds) > 0
}

// waitFor polls until ok is true, failing the test after 10 s.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitQueued waits until n calls wait in the queue.
func waitQueued(t *testing.T, gc *GroupCommit[Commands], n int) {
	t.Helper()
	waitFor(t, strconv.Itoa(n)+" calls queued", func() bool {
		gc.mu.Lock()
		defer gc.mu.Unlock()
		return len(gc.queue) == n
	})
}

// gatedCommit returns a Redis for the test and a pipeline group commit
// over a client of its own whose pipelines wait at g until it opens.
func gatedCommit(t *testing.T) (*redistest.Redis, *gate, *GroupCommit[Commands]) {
	t.Helper()
	r := redistest.New(t)
	g := &gate{open: make(chan struct{})}
	return r, g, NewPipelineCommit(r.HookedClient(t, g))
}

// holdEveryFlusher starts GroupCommitFlushers calls (start(i)) one at a
// time, so that each flusher waits at the gate with a call of its own.
func holdEveryFlusher(t *testing.T, g *gate, start func(i int)) {
	t.Helper()
	for i := range GroupCommitFlushers {
		start(i)
		waitFor(t, "pipeline "+strconv.Itoa(i+1)+" held", func() bool { return g.pipelines.Load() == int64(i+1) })
	}
}

// waitDrained waits until no flusher runs and nothing is queued.
func waitDrained(t *testing.T, gc *GroupCommit[Commands]) {
	t.Helper()
	waitFor(t, "the flushers to end", func() bool {
		gc.mu.Lock()
		defer gc.mu.Unlock()
		return gc.flushing == 0 && len(gc.queue) == 0
	})
}

func TestGroupCommitSharesPipelinesAndGivesEachCallerItsOwnResults(t *testing.T) {
	r, g, gc := gatedCommit(t)

	// The first GroupCommitFlushers calls each start a pipeline, held by
	// the gate; the rest queue, then share pipelines once it opens.
	const calls = 300
	ctx := context.Background()
	got := make([]int64, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	start := func(i int) {
		wg.Go(func() {
			key := r.Prefix + "gc:" + strconv.Itoa(i)
			var incr *redis.IntCmd
			if errs[i] = gc.Do(ctx, func(ctx context.Context, p redis.Pipeliner) {
				p.Set(ctx, key, i*10, time.Minute)
				incr = p.Incr(ctx, key)
			}); errs[i] == nil {
				got[i], errs[i] = incr.Result()
			}
		})
	}
	holdEveryFlusher(t, g, start)
	for i := GroupCommitFlushers; i < calls; i++ {
		start(i)
	}
	waitQueued(t, gc, calls-GroupCommitFlushers)
	close(g.open)
	wg.Wait()
	for i := range calls {
		if errs[i] != nil || got[i] != int64(i*10+1) {
			t.Fatalf("call %d: %d, %v; want %d", i, got[i], errs[i], i*10+1)
		}
	}
	// 4 held pipelines, then the 296 queued calls in pipelines of at most
	// GroupCommitBatch: at least 3, and at most one per flusher more.
	n := g.pipelines.Load()
	if n < GroupCommitFlushers+3 || n > GroupCommitFlushers+3+GroupCommitFlushers {
		t.Errorf("%d calls took %d pipelines; want 4 held and 3 to 7 shared", calls, n)
	}
	// A flusher hands each caller its result before it ends, so it may
	// still be ending when the last caller returns: wait for that.
	waitDrained(t, gc)
}

func TestGroupCommitKeepsEachCallersErrorsItsOwn(t *testing.T) {
	r := redistest.New(t)
	gc := NewPipelineCommit(r.Client)
	ctx := context.Background()
	notANumber := r.Prefix + "gc:word"
	if err := r.Client.Set(ctx, notANumber, "word", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	bad, good := make([]error, 20), make([]int64, 20)
	for i := range 20 {
		wg.Go(func() {
			var incr *redis.IntCmd
			key := r.Prefix + "gc:n:" + strconv.Itoa(i)
			if i%2 == 0 {
				key = notANumber
			}
			if err := gc.Do(ctx, func(ctx context.Context, p redis.Pipeliner) { incr = p.Incr(ctx, key) }); err != nil {
				t.Error(err)
				return
			}
			good[i], bad[i] = incr.Result()
		})
	}
	wg.Wait()
	for i := range 20 {
		if i%2 == 0 && bad[i] == nil {
			t.Errorf("call %d: INCR of a word succeeded", i)
		}
		if i%2 == 1 && (bad[i] != nil || good[i] != 1) {
			t.Errorf("call %d: %d, %v; want 1 beside the others' failures", i, good[i], bad[i])
		}
	}
}

func TestGroupCommitDropsACallWhoseCallerGaveUpBeforeItsBatch(t *testing.T) {
	r, g, gc := gatedCommit(t)
	background := context.Background()
	set := func(key string) Commands {
		return func(ctx context.Context, p redis.Pipeliner) { p.Set(ctx, r.Prefix+key, "x", time.Minute) }
	}

	// Every flusher held at the gate with a call of its own.
	var wg sync.WaitGroup
	holdEveryFlusher(t, g, func(i int) {
		wg.Go(func() {
			if err := gc.Do(background, set("held:"+strconv.Itoa(i))); err != nil {
				t.Error(err)
			}
		})
	})
	// Two queued calls; one caller gives up while its call waits.
	gaveUp, giveUp := context.WithCancel(background)
	done := make(chan error, 1)
	go func() { done <- gc.Do(gaveUp, set("gave-up")) }()
	wg.Go(func() {
		if err := gc.Do(background, set("waited")); err != nil {
			t.Error(err)
		}
	})
	waitQueued(t, gc, 2)
	giveUp()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Do of a caller who gave up = %v", err)
	}
	close(g.open)
	wg.Wait()
	waitDrained(t, gc)
	for key, want := range map[string]int64{"held:0": 1, "waited": 1, "gave-up": 0} {
		if got := r.Client.Exists(background, r.Prefix+key).Val(); got != want {
			t.Errorf("%s: %d keys written, want %d", key, got, want)
		}
	}
}

func TestGroupCommitRefusesPastItsQueueBound(t *testing.T) {
	r, g, gc := gatedCommit(t)
	background := context.Background()
	incr := func(ctx context.Context, p redis.Pipeliner) { p.Incr(ctx, r.Prefix+"n") }

	// Redis hangs: every flusher waits at the gate with a call of its own.
	var wg sync.WaitGroup
	holdEveryFlusher(t, g, func(int) {
		wg.Go(func() {
			if err := gc.Do(background, incr); err != nil {
				t.Error(err)
			}
		})
	})
	// Callers who give up leave their calls queued until a batch forms.
	gone, cancel := context.WithCancel(background)
	cancel()
	for range GroupCommitQueue {
		if err := gc.Do(gone, incr); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do of a caller who has gone = %v", err)
		}
	}
	if err := gc.Do(background, incr); !errors.Is(err, ErrGroupCommitFull) {
		t.Fatalf("Do past %d queued calls = %v, want ErrGroupCommitFull", GroupCommitQueue, err)
	}
	close(g.open)
	wg.Wait()
	waitDrained(t, gc)
	// Only the held calls ran; once drained, calls are taken again.
	if err := gc.Do(background, incr); err != nil {
		t.Fatal(err)
	}
	if got := r.Client.Get(background, r.Prefix+"n").Val(); got != strconv.Itoa(GroupCommitFlushers+1) {
		t.Errorf("counter = %s, want %d: the held calls and the last, none of the given-up ones", got, GroupCommitFlushers+1)
	}
}

// A call a batch has taken runs, and its caller is told the outcome even
// when it gives up meanwhile: a write must not be reported as failed when
// it happened.
func TestGroupCommitReportsATakenCallsOutcomeToACallerWhoGaveUp(t *testing.T) {
	r, g, gc := gatedCommit(t)
	caller, giveUp := context.WithCancel(context.Background())
	var incr *redis.IntCmd
	done := make(chan error, 1)
	go func() {
		done <- gc.Do(caller, func(ctx context.Context, p redis.Pipeliner) { incr = p.Incr(ctx, r.Prefix+"n") })
	}()
	waitFor(t, "the call's batch to be held", func() bool { return g.pipelines.Load() == 1 })
	giveUp()
	close(g.open)
	if err := <-done; err != nil {
		t.Fatalf("Do of a taken call whose caller gave up = %v, want nil: the write happened", err)
	}
	if n, err := incr.Result(); n != 1 || err != nil {
		t.Errorf("the taken call's INCR = %d, %v; want 1", n, err)
	}
}

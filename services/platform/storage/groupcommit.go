package storage

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// GroupCommit runs the calls of concurrent callers in batches (group
// commit): each caller waits for its own call, but many callers wait for
// one round trip. The submission outbox's accepts run through one (a batch
// is one pipeline of accept scripts), and so do the audit entries every
// state-changing call writes (NewPipelineCommit).
//
// A call is queued; when fewer than GroupCommitFlushers batches are in
// flight a flusher starts and runs everything queued (up to
// GroupCommitBatch calls a batch), again and again until the queue is
// empty, then ends. A lone call is run at once, and no goroutine outlives
// the queue. A call whose caller has gone (its context ended) before a
// batch takes it is dropped, not run, and its caller is told so; a call a
// batch has taken is run, and its caller waits for the outcome.
type GroupCommit[C any] struct {
	run func(batch []C)

	mu       sync.Mutex
	queue    []*groupCall[C]
	flushing int
}

// Group commit bounds.
const (
	// GroupCommitBatch bounds the calls of one batch.
	GroupCommitBatch = 128
	// GroupCommitFlushers bounds the batches in flight at once (Redis
	// connections).
	GroupCommitFlushers = 4
	// GroupCommitQueue bounds the calls waiting for a batch: past it Do
	// refuses at once (ErrGroupCommitFull), so a Redis that hangs does not
	// collect every call made meanwhile. Healthy, the queue holds about
	// as many calls as there are callers.
	GroupCommitQueue = 64 * GroupCommitBatch
	// groupCommitTimeout bounds one pipeline of NewPipelineCommit: it runs
	// on its own, so a caller that gave up does not cut the others' writes
	// short.
	groupCommitTimeout = 30 * time.Second
)

// ErrGroupCommitFull is Do's answer when GroupCommitQueue calls wait.
var ErrGroupCommitFull = errors.New("storage: too many calls wait for Redis")

// groupCall is one queued call. A flusher decides under the mutex whether
// a batch takes it (taken) or drops it because its caller has gone
// (gone), and Do decides under the same mutex when its caller goes: a call
// is either run, with its caller told the outcome, or neither run nor
// reported as run.
type groupCall[C any] struct {
	ctx   context.Context
	call  C
	done  chan struct{} // closed once a taken call has run
	taken bool
	gone  bool
}

// NewGroupCommit returns a group commit that runs each batch with run. run
// sets each call's outcome where its caller reads it (in the call itself);
// it runs on its own, whatever the callers' contexts.
func NewGroupCommit[C any](run func(batch []C)) *GroupCommit[C] {
	return &GroupCommit[C]{run: run}
}

// Do queues call and waits until its batch has run; the caller then reads
// the call's outcome. It refuses (ErrGroupCommitFull) when
// GroupCommitQueue calls wait already. When ctx ends while the call still
// waits for a batch, Do returns ctx's error and the call is dropped, never
// run; once a batch has taken it, Do waits for the batch (bounded by the
// run's own timeout) and returns nil, whatever ctx says.
func (g *GroupCommit[C]) Do(ctx context.Context, call C) error {
	c := &groupCall[C]{ctx: ctx, call: call, done: make(chan struct{})}
	g.mu.Lock()
	if len(g.queue) >= GroupCommitQueue {
		g.mu.Unlock()
		return ErrGroupCommitFull
	}
	g.queue = append(g.queue, c)
	start := g.flushing < GroupCommitFlushers
	if start {
		g.flushing++
	}
	g.mu.Unlock()
	if start {
		go g.flush()
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	}
	g.mu.Lock()
	taken := c.taken
	if !taken {
		c.gone = true
	}
	g.mu.Unlock()
	if !taken {
		return ctx.Err()
	}
	<-c.done
	return nil
}

func (g *GroupCommit[C]) flush() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.flushing--
			g.mu.Unlock()
			return
		}
		n := min(len(g.queue), GroupCommitBatch)
		batch := make([]*groupCall[C], 0, n)
		for _, c := range g.queue[:n] {
			if c.gone || c.ctx.Err() != nil {
				c.gone = true // its caller is told ctx's error
				continue
			}
			c.taken = true
			batch = append(batch, c)
		}
		g.queue = g.queue[n:]
		if len(g.queue) == 0 {
			g.queue = nil
		}
		g.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		calls := make([]C, len(batch))
		for i, c := range batch {
			calls[i] = c.call
		}
		g.run(calls)
		for _, c := range batch {
			close(c.done)
		}
	}
}

// Commands puts one caller's commands in a shared pipeline.
type Commands func(ctx context.Context, p redis.Pipeliner)

// NewPipelineCommit returns a group commit whose batch is one pipeline
// over rdb: each caller's Commands add its commands, and the caller reads
// their results once Do returns nil (each command has its own: one
// caller's failed command does not fail the others'). Like any pipeline,
// a batch that fails on the network may be sent again by go-redis.
func NewPipelineCommit(rdb redis.UniversalClient) *GroupCommit[Commands] {
	return NewGroupCommit(func(batch []Commands) {
		ctx, cancel := context.WithTimeout(context.Background(), groupCommitTimeout)
		defer cancel()
		// Errors are each command's, read by its caller.
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, add := range batch {
				add(ctx, p)
			}
			return nil
		})
	})
}

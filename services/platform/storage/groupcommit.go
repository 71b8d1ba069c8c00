package storage

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// GroupCommit sends the commands of concurrent callers in shared pipelines
// (group commit): each caller waits for its own commands, but many callers
// wait for one round trip. It is for writes every call makes, such as the
// audit entry of a state-changing call, that go-redis's autopipeliner
// cannot share because each is a pipeline of its own.
//
// A call is queued; when fewer than GroupCommitFlushers pipelines are in
// flight a flusher starts and sends everything queued (up to
// GroupCommitBatch calls a pipeline), again and again until the queue is
// empty, then ends. A lone call is sent at once, and no goroutine outlives
// the queue. Like any pipeline, a batch that fails on the network may be
// sent again by go-redis.
type GroupCommit struct {
	rdb redis.UniversalClient

	mu       sync.Mutex
	queue    []*groupCall
	flushing int
}

// Group commit bounds.
const (
	// GroupCommitBatch bounds the calls of one pipeline.
	GroupCommitBatch = 128
	// GroupCommitFlushers bounds the pipelines in flight at once.
	GroupCommitFlushers = 4
	// groupCommitTimeout bounds one pipeline: it runs on its own, so a
	// caller that gave up does not cut the others' writes short.
	groupCommitTimeout = 30 * time.Second
)

type groupCall struct {
	add  func(ctx context.Context, p redis.Pipeliner)
	done chan struct{}
}

// NewGroupCommit returns a group commit over rdb.
func NewGroupCommit(rdb redis.UniversalClient) *GroupCommit {
	return &GroupCommit{rdb: rdb}
}

// Do queues the commands add puts in a pipeline and waits until that
// pipeline has run; the caller then reads its commands' results (each
// command has its own: one caller's failed command does not fail the
// others'). When ctx ends first Do returns ctx's error at once; the
// commands still run, and their results must not be read.
func (g *GroupCommit) Do(ctx context.Context, add func(ctx context.Context, p redis.Pipeliner)) error {
	c := &groupCall{add: add, done: make(chan struct{})}
	g.mu.Lock()
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
		return ctx.Err()
	}
}

func (g *GroupCommit) flush() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.flushing--
			g.mu.Unlock()
			return
		}
		n := min(len(g.queue), GroupCommitBatch)
		batch := make([]*groupCall, n)
		copy(batch, g.queue)
		g.queue = g.queue[n:]
		if len(g.queue) == 0 {
			g.queue = nil
		}
		g.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), groupCommitTimeout)
		// Errors are each command's, read by its caller.
		_, _ = g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range batch {
				c.add(ctx, p)
			}
			return nil
		})
		cancel()
		for _, c := range batch {
			close(c.done)
		}
	}
}

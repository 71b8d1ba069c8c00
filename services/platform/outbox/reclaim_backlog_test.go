package outbox

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// TestADeadReplicasEntryIsReclaimedWhileABacklogLasts: a replica used to
// reclaim the entries a dead replica left only with the room its read of
// new entries left over. While a backlog kept every read full, nothing
// was reclaimed: the dead replica's submit or delivery waited until the
// backlog was gone, however long that was, though its visibility timeout
// had passed long before. A due reclaim now has a share of the room.
func TestADeadReplicasEntryIsReclaimedWhileABacklogLasts(t *testing.T) {
	f := newFixture(t)
	f.enqueue("orphan", false)
	dead := f.queue("dead", func(context.Context, Entry) {}, nil)
	for shard := range testShards {
		dead.EnsureGroup(f.ctx, shard)
	}
	if got := dead.ReadNew(f.ctx, 10); len(got) != 1 {
		t.Fatalf("the dead replica read %d entries", len(got))
	}
	// A backlog: 1,500 items queued behind it.
	for i := range 1500 {
		f.enqueue(fmt.Sprintf("b%04d", i), false)
	}
	var handled atomic.Int64
	var orphanAt atomic.Int64
	settle := f.settler(func(e Entry, _ Claim) Settlement { return Settlement{Outcome: Done} }, func(e Entry, _ Claim) {
		n := handled.Add(1)
		if e.Item == "orphan" {
			orphanAt.Store(n)
		}
		time.Sleep(time.Millisecond)
	})
	start := time.Now()
	f.run(f.queue("live", settle, func(c *Config) {
		c.Concurrency = 2
		c.VisibilityTimeout = 50 * time.Millisecond
	}))
	f.waitFor("the orphan or the whole backlog", func() bool { return orphanAt.Load() > 0 || handled.Load() >= 1500 })
	if n := orphanAt.Load(); n == 0 || n > 300 {
		t.Fatalf("the dead replica's entry (visibility timeout 50ms) was handled as item %d of 1501 after %v (0: not yet, after %d items); want it reclaimed within a few reclaim periods",
			n, time.Since(start).Round(time.Millisecond), handled.Load())
	}
}

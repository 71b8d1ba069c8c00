package outbox

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

const testShards = 4

type fixture struct {
	t   *testing.T
	ctx context.Context
	rdb *redistest.Redis
	rec *Records
}

func newFixture(t *testing.T) *fixture {
	r := redistest.New(t)
	return &fixture{t: t, ctx: context.Background(), rdb: r,
		rec: &Records{Redis: r.Client, Prefix: r.Prefix, Name: "ob", Group: "g", Retention: time.Hour, JournalMax: 5}}
}

func shardOf(item string) int { return len(item) % testShards }

func (f *fixture) enqueue(item string, again bool) bool {
	f.t.Helper()
	created, err := f.rec.Enqueue(f.ctx, shardOf(item), "t1", item, again, "pb", "payload of "+item)
	if err != nil {
		f.t.Fatal(err)
	}
	return created
}

// queue returns a queue of consumer whose handler is handle.
func (f *fixture) queue(consumer string, handle Handler, change func(*Config)) *Queue {
	f.t.Helper()
	cfg := Config{
		Name: "test", Redis: f.rdb.Client, Shards: func() int { return testShards }, Group: "g", Consumer: consumer,
		Stream: f.rec.Stream, Schedule: f.rec.Schedule, RecordPrefix: f.rec.RecordPrefix,
		Handle: handle, Concurrency: 4, PollInterval: 5 * time.Millisecond, VisibilityTimeout: 10 * time.Second,
	}
	if change != nil {
		change(&cfg)
	}
	q, err := New(cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return q
}

func (f *fixture) run(q *Queue) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	f.t.Cleanup(func() { cancel(); <-done })
}

func (f *fixture) state(item string) string {
	st, _ := f.rdb.Client.HGet(f.ctx, f.rec.Record(shardOf(item), "t1", item), "st").Result()
	return st
}

func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// settler claims and settles each entry with outcome(claim).
func (f *fixture) settler(outcome func(e Entry, c Claim) Settlement, seen func(e Entry, c Claim)) Handler {
	var n atomic.Int64
	return func(ctx context.Context, e Entry) {
		token := fmt.Sprintf("%p-%d", &n, n.Add(1)) // unique across replicas
		c, err := f.rec.Claim(ctx, e, token, 5*time.Second)
		if err != nil || c.Kind != "ok" {
			return
		}
		if seen != nil {
			seen(e, c)
		}
		if _, err := f.rec.Settle(ctx, e, token, outcome(e, c)); err != nil {
			f.t.Error(err)
		}
	}
}

func TestEveryItemIsHandledOnceByTwoReplicas(t *testing.T) {
	f := newFixture(t)
	var items []string
	for i := range 60 {
		it := fmt.Sprintf("item-%d", i)
		items = append(items, it)
		if !f.enqueue(it, false) {
			t.Fatalf("%s not created", it)
		}
	}
	if f.enqueue(items[0], false) {
		t.Errorf("an item enqueued twice was created twice")
	}
	var mu sync.Mutex
	handled := map[string]int{}
	h := f.settler(func(Entry, Claim) Settlement { return Settlement{Outcome: Done} }, func(e Entry, c Claim) {
		mu.Lock()
		defer mu.Unlock()
		handled[e.Item]++
		if string(c.Payload) != "payload of "+e.Item || e.Tenant != "t1" {
			t.Errorf("claim of %s: %q %q", e.Item, c.Payload, e.Tenant)
		}
	})
	f.run(f.queue("a", h, nil))
	f.run(f.queue("b", h, nil))
	f.waitFor("every item done", func() bool {
		for _, it := range items {
			if f.state(it) != StateDone {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	for _, it := range items {
		if handled[it] != 1 {
			t.Errorf("%s handled %d times", it, handled[it])
		}
	}
	for shard := range testShards {
		if n, _ := f.rdb.Client.XLen(f.ctx, f.rec.Stream(shard)).Result(); n != 0 {
			t.Errorf("shard %d's stream keeps %d entries", shard, n)
		}
	}
}

func TestRetriesComeBackFromTheDurableSchedule(t *testing.T) {
	f := newFixture(t)
	f.enqueue("flaky", false)
	var mu sync.Mutex
	var runs []int
	h := f.settler(func(_ Entry, c Claim) Settlement {
		if c.RunAttempts < 2 {
			return Settlement{Outcome: Retry, Backoff: time.Millisecond, Journal: []byte(fmt.Sprint("attempt ", c.Attempts))}
		}
		return Settlement{Outcome: Done, Journal: []byte(fmt.Sprint("attempt ", c.Attempts)), Fields: []any{"note", "ok"}}
	}, func(_ Entry, c Claim) {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, c.RunAttempts)
	})
	f.run(f.queue("a", h, nil))
	f.waitFor("done", func() bool { return f.state("flaky") == StateDone })
	mu.Lock()
	if diff := cmp.Diff([]int{0, 1, 2}, runs); diff != "" {
		t.Errorf("run attempts seen (-want +got):\n%s", diff)
	}
	mu.Unlock()
	journal, _ := f.rdb.Client.LRange(f.ctx, f.rec.Journal(shardOf("flaky"), "t1", "flaky"), 0, -1).Result()
	if diff := cmp.Diff([]string{"attempt 0", "attempt 1", "attempt 2"}, journal); diff != "" {
		t.Errorf("journal (-want +got):\n%s", diff)
	}
	rec, _ := f.rdb.Client.HGetAll(f.ctx, f.rec.Record(shardOf("flaky"), "t1", "flaky")).Result()
	if rec["att"] != "3" || rec["note"] != "ok" || rec["eid"] != "" {
		t.Errorf("record %v", rec)
	}
	if ttl, _ := f.rdb.Client.PTTL(f.ctx, f.rec.Record(shardOf("flaky"), "t1", "flaky")).Result(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("a settled record's TTL is %v, want the retention", ttl)
	}
	// Queued again (an operator's redelivery): a new run, the count kept.
	if !f.enqueue("flaky", true) {
		t.Fatal("a settled item was not queued again")
	}
	f.waitFor("done again", func() bool { return f.state("flaky") == StateDone && len(runs) == 6 })
	if n, _ := f.rdb.Client.HGet(f.ctx, f.rec.Record(shardOf("flaky"), "t1", "flaky"), "att").Result(); n != "6" {
		t.Errorf("attempts after a second run: %s, want 6", n)
	}
	// The journal keeps the newest JournalMax attempts.
	journal, _ = f.rdb.Client.LRange(f.ctx, f.rec.Journal(shardOf("flaky"), "t1", "flaky"), 0, -1).Result()
	if diff := cmp.Diff([]string{"attempt 1", "attempt 2", "attempt 3", "attempt 4", "attempt 5"}, journal); diff != "" {
		t.Errorf("journal after a second run (-want +got):\n%s", diff)
	}
}

func TestEntriesLeftByADeadReplicaAreReclaimed(t *testing.T) {
	f := newFixture(t)
	for _, it := range []string{"x", "yy", "zzz"} {
		f.enqueue(it, false)
	}
	// Replica A reads every entry and dies without a word.
	dead := f.queue("dead", func(context.Context, Entry) {}, nil)
	for shard := range testShards {
		dead.EnsureGroup(f.ctx, shard)
	}
	if got := dead.ReadNew(f.ctx, 10); len(got) != 3 {
		t.Fatalf("replica A read %d entries", len(got))
	}
	var reclaimed atomic.Int64
	h := f.settler(func(Entry, Claim) Settlement { return Settlement{Outcome: Done} }, nil)
	f.run(f.queue("b", h, func(c *Config) {
		c.VisibilityTimeout = 20 * time.Millisecond
		c.Hooks.OnReclaimed = func(n int) { reclaimed.Add(int64(n)) }
	}))
	f.waitFor("every item done by B", func() bool {
		return f.state("x") == StateDone && f.state("yy") == StateDone && f.state("zzz") == StateDone
	})
	if reclaimed.Load() < 3 {
		t.Errorf("reclaimed %d, want 3", reclaimed.Load())
	}
}

func TestOneLeaseHolder(t *testing.T) {
	f := newFixture(t)
	f.enqueue("one", false)
	q := f.queue("a", func(context.Context, Entry) {}, nil)
	q.EnsureGroup(f.ctx, shardOf("one"))
	es := q.ReadNew(f.ctx, 1)
	if len(es) != 1 {
		t.Fatalf("read %d", len(es))
	}
	first, err := f.rec.Claim(f.ctx, es[0], "first", time.Minute)
	if err != nil || first.Kind != "ok" {
		t.Fatalf("first claim %v %v", first, err)
	}
	second, err := f.rec.Claim(f.ctx, es[0], "second", time.Minute)
	if err != nil || second.Kind != "busy" {
		t.Errorf("second claim under a live lease: %v %v, want busy", second, err)
	}
	if applied, err := f.rec.Settle(f.ctx, es[0], "first", Settlement{Outcome: Drop}); err != nil || applied != Drop {
		t.Fatalf("settle: %q %v", applied, err)
	}
	if f.state("one") != StateDead {
		t.Errorf("dropped item's state %s", f.state("one"))
	}
	if n, _ := f.rdb.Client.HGet(f.ctx, f.rec.Record(shardOf("one"), "t1", "one"), "att").Result(); n != "0" {
		t.Errorf("a drop counted %s attempts", n)
	}
	// The entry is gone; a stale claim acknowledges and says so.
	if c, err := f.rec.Claim(f.ctx, es[0], "third", time.Minute); err != nil || c.Kind != "stale" {
		t.Errorf("claim after settling: %v %v, want stale", c, err)
	}
}

// TestASettlementReleasesOnlyItsOwnLease: a retry's settlement frees the
// lease at once (the retry is claimed without waiting for the lease to
// expire), and a late settlement of an older entry leaves the lease of the
// attempt now in flight alone.
func TestASettlementReleasesOnlyItsOwnLease(t *testing.T) {
	f := newFixture(t)
	f.enqueue("one", false)
	q := f.queue("a", func(context.Context, Entry) {}, nil)
	shard := shardOf("one")
	q.EnsureGroup(f.ctx, shard)
	read := func() Entry {
		t.Helper()
		es := q.ReadNew(f.ctx, 1)
		if len(es) != 1 {
			t.Fatalf("read %d entries, want 1", len(es))
		}
		return es[0]
	}
	first := read()
	if c, err := f.rec.Claim(f.ctx, first, "first", time.Hour); err != nil || c.Kind != "ok" {
		t.Fatalf("first claim: %v %v", c, err)
	}
	if applied, err := f.rec.Settle(f.ctx, first, "first", Settlement{Outcome: Retry, Backoff: 0}); err != nil || applied != Retry {
		t.Fatalf("settle: %q %v", applied, err)
	}
	f.waitFor("the retry to be due", func() bool {
		q.Promote(f.ctx)
		n, _ := f.rdb.Client.XLen(f.ctx, f.rec.Stream(shard)).Result()
		return n == 1
	})
	retry := read()
	if c, err := f.rec.Claim(f.ctx, retry, "second", time.Hour); err != nil || c.Kind != "ok" {
		t.Fatalf("the retry's claim: %v %v, want ok: the first attempt's settlement freed the lease", c, err)
	}
	// A settlement of the first entry sent late (another token) changes
	// nothing of the attempt in flight.
	if applied, err := f.rec.Settle(f.ctx, first, "late", Settlement{Outcome: Done}); err != nil || applied != "skip" {
		t.Fatalf("late settlement: %q %v, want skip", applied, err)
	}
	if c, err := f.rec.Claim(f.ctx, retry, "third", time.Hour); err != nil || c.Kind != "busy" {
		t.Errorf("a claim while the retry's lease lives: %v %v, want busy", c, err)
	}
	if applied, err := f.rec.Settle(f.ctx, retry, "second", Settlement{Outcome: Done}); err != nil || applied != Done {
		t.Fatalf("the retry's settlement: %q %v", applied, err)
	}
	if f.state("one") != StateDone {
		t.Errorf("state %s, want done", f.state("one"))
	}
}

func TestLagHookReportsTheBacklog(t *testing.T) {
	f := newFixture(t)
	for _, it := range []string{"a", "bb"} {
		f.enqueue(it, false)
	}
	got := make(chan [2]int64, 1)
	q := f.queue("a", func(context.Context, Entry) {}, func(c *Config) {
		c.Hooks.OnLag = func(lag time.Duration, ready, scheduled int64) {
			select {
			case got <- [2]int64{ready, scheduled}:
			default:
			}
		}
	})
	q.updateLag(f.ctx)
	if diff := cmp.Diff([2]int64{2, 0}, <-got); diff != "" {
		t.Errorf("ready, scheduled (-want +got):\n%s", diff)
	}
}

func TestEntryTime(t *testing.T) {
	for id, want := range map[string]int64{"1700000000000-0": 1700000000000, "12-3": 12, "x-1": 0} {
		got := EntryTime(id)
		if want == 0 {
			if !got.IsZero() {
				t.Errorf("EntryTime(%q) = %v", id, got)
			}
		} else if got.UnixMilli() != want {
			t.Errorf("EntryTime(%q) = %v", id, got)
		}
	}
}

func TestASettlementSentTwiceIsRecordedOnce(t *testing.T) {
	f := newFixture(t)
	// An autopipelined client may send a batch again when its connection
	// drops: the second settlement must change nothing.
	outcomes := map[string]Settlement{
		"retried": {Outcome: Retry, Backoff: time.Hour, Journal: []byte("attempt 0")},
		"done":    {Outcome: Done, Journal: []byte("attempt 0")},
	}
	answers := map[string][]string{}
	var mu sync.Mutex
	for it := range outcomes {
		f.enqueue(it, false)
	}
	f.run(f.queue("a", func(ctx context.Context, e Entry) {
		c, err := f.rec.Claim(ctx, e, "token", 5*time.Second)
		if err != nil || c.Kind != "ok" {
			t.Errorf("claim %s: %v %v", e.Item, c, err)
			return
		}
		for range 2 {
			got, err := f.rec.Settle(ctx, e, "token", outcomes[e.Item])
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			answers[e.Item] = append(answers[e.Item], got)
			mu.Unlock()
		}
	}, nil))
	f.waitFor("both settled twice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(answers["retried"]) == 2 && len(answers["done"]) == 2
	})
	if diff := cmp.Diff(map[string][]string{"retried": {"retry", "skip"}, "done": {"done", "skip"}}, answers); diff != "" {
		t.Errorf("settle answers (-want +got):\n%s", diff)
	}
	for it := range outcomes {
		journal, _ := f.rdb.Client.LRange(f.ctx, f.rec.Journal(shardOf(it), "t1", it), 0, -1).Result()
		if diff := cmp.Diff([]string{"attempt 0"}, journal); diff != "" {
			t.Errorf("%s's journal (-want +got):\n%s", it, diff)
		}
		if n, _ := f.rdb.Client.HGet(f.ctx, f.rec.Record(shardOf(it), "t1", it), "att").Result(); n != "1" {
			t.Errorf("%s's attempts: %s, want 1", it, n)
		}
	}
}

func TestFieldsTheScriptsCannotWriteWholeAreRefusedBeforeAnyWrite(t *testing.T) {
	f := newFixture(t)
	tooMany := make([]any, 2*(MaxFields+1))
	for i := range tooMany {
		tooMany[i] = fmt.Sprint("f", i)
	}
	for name, fields := range map[string][]any{"too many": tooMany, "odd": {"pb", "payload", "note"}} {
		if _, err := f.rec.Enqueue(f.ctx, shardOf("big"), "t1", "big", false, fields...); err == nil {
			t.Errorf("%s: enqueued", name)
		}
		if _, err := f.rec.Settle(f.ctx, Entry{Shard: shardOf("big"), StreamID: "1-1", Tenant: "t1", Item: "big"}, "token", Settlement{Outcome: Done, Fields: fields}); err == nil {
			t.Errorf("%s: settled", name)
		}
	}
	if n, _ := f.rdb.Client.XLen(f.ctx, f.rec.Stream(shardOf("big"))).Result(); n != 0 {
		t.Errorf("the stream holds %d entries after refused writes", n)
	}
	if n, _ := f.rdb.Client.Exists(f.ctx, f.rec.Record(shardOf("big"), "t1", "big")).Result(); n != 0 {
		t.Errorf("a record was written")
	}
}

// TestPrefetchReadsAheadOfBusyWorkersAndRunFinishesWhatItRead: with its
// one worker held on an entry, a queue with Prefetch 2 reads two more
// entries of the shard (pending in its consumer; a reader without
// read-ahead reads only for free workers, so it would hold one), and no
// fourth; when Run's context ends, the read-ahead entries are still
// handled before Run returns.
func TestPrefetchReadsAheadOfBusyWorkersAndRunFinishesWhatItRead(t *testing.T) {
	f := newFixture(t)
	items := []string{"a", "bbbbb", "ccccccccc", "ddddddddddddd"} // all of shard 1
	for _, it := range items {
		f.enqueue(it, false)
	}
	release := make(chan struct{})
	started := make(chan struct{}, len(items))
	var mu sync.Mutex
	var handled []string
	q := f.queue("c1", func(ctx context.Context, e Entry) {
		started <- struct{}{}
		<-release
		f.rdb.Client.XAck(f.ctx, f.rec.Stream(e.Shard), "g", e.StreamID)
		mu.Lock()
		handled = append(handled, e.Item)
		mu.Unlock()
	}, func(c *Config) { c.Concurrency, c.Prefetch = 1, 2 })
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan struct{})
	go func() { defer close(done); q.Run(ctx) }()
	<-started
	pending := func() int64 {
		p, err := f.rdb.Client.XPending(f.ctx, f.rec.Stream(1), "g").Result()
		if err != nil {
			return 0
		}
		return p.Count
	}
	f.waitFor("the reader to read two entries ahead of its busy worker", func() bool { return pending() >= 3 })
	cancel()
	close(release)
	<-done
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(items[:3], handled); diff != "" {
		t.Errorf("entries handled before Run returned (-want +got):\n%s", diff)
	}
	left, err := f.rdb.Client.XReadGroup(f.ctx, &redis.XReadGroupArgs{Group: "g", Consumer: "probe", Streams: []string{f.rec.Stream(1), ">"}, Count: 10, Block: -1}).Result()
	if err != nil || len(left) != 1 || len(left[0].Messages) != 1 || left[0].Messages[0].Values["s"] != items[3] {
		t.Errorf("entries never read: %v (%v), want only %q", left, err, items[3])
	}
}

// TestReadNewReadsAboutWhatItIsAskedForAcrossShards: a read across shards
// brings at most one entry per shard more than asked for, however much
// every shard holds, and all that was asked for when one shard holds it
// all.
func TestReadNewReadsAboutWhatItIsAskedForAcrossShards(t *testing.T) {
	t.Run("every shard full", func(t *testing.T) {
		f := newFixture(t)
		for shard := range testShards {
			for k := 1; k <= 8; k++ {
				f.enqueue(strings.Repeat("x", 4*k+shard), false) // shardOf: its length mod 4
			}
		}
		q := f.queue("c1", func(context.Context, Entry) {}, nil)
		for shard := range testShards {
			q.EnsureGroup(f.ctx, shard)
		}
		read := 0
		for _, free := range []int{4, 6, 1} {
			got := q.ReadNew(f.ctx, free)
			if len(got) < free || len(got) > free+testShards-1 {
				t.Errorf("ReadNew(%d) read %d entries, want %d to %d", free, len(got), free, free+testShards-1)
			}
			read += len(got)
		}
		if rest := q.ReadNew(f.ctx, 100); read+len(rest) != 8*testShards {
			t.Errorf("read %d then %d entries, want %d in all", read, len(rest), 8*testShards)
		}
	})
	t.Run("one shard holds everything", func(t *testing.T) {
		f := newFixture(t)
		for c := 'a'; c < 'a'+10; c++ {
			f.enqueue(strings.Repeat(string(c), 5), false) // all of shard 1
		}
		q := f.queue("c1", func(context.Context, Entry) {}, nil)
		for shard := range testShards {
			q.EnsureGroup(f.ctx, shard)
		}
		if got := q.ReadNew(f.ctx, 10); len(got) != 10 {
			t.Errorf("ReadNew(10) read %d entries of the one full shard, want 10", len(got))
		}
	})
}

// A settled item queued again by a call sent twice (its reply lost) is
// reported queued, as it was, and runs once more: an operator's
// redelivery counts what it queued.
func TestAQueueAgainSentTwiceReportsItQueued(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	runs := 0
	f.enqueue("item", false)
	f.run(f.queue("a", func(ctx context.Context, e Entry) {
		c, err := f.rec.Claim(ctx, e, "token-"+e.StreamID, 5*time.Second)
		if err != nil || c.Kind != "ok" {
			return
		}
		if _, err := f.rec.Settle(ctx, e, "token-"+e.StreamID, Settlement{Outcome: Done}); err == nil {
			mu.Lock()
			runs++
			mu.Unlock()
		}
	}, nil))
	f.waitFor("done", func() bool { return f.state("item") == StateDone })
	hook := &redistest.Resend{Script: redistest.ReadScript(t, "lua/enqueue.lua")}
	hooked := *f.rec
	hooked.Redis = f.rdb.HookedClient(t, hook)
	created, err := hooked.Enqueue(f.ctx, shardOf("item"), "t1", "item", true, "pb", "payload of item")
	if err != nil || !created {
		t.Fatalf("Enqueue again sent twice = %v, %v; want it reported queued", created, err)
	}
	f.waitFor("run again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return runs == 2 && f.state("item") == StateDone
	})
	// The same call arriving once more after the item settled (a resend
	// late behind the worker) queues nothing.
	if entries, err := f.rdb.Client.XLen(f.ctx, f.rec.Stream(shardOf("item"))).Result(); err != nil || entries != 0 {
		t.Fatalf("stream holds %d entries, %v; want none before the late resend", entries, err)
	}
	if err := f.rdb.Client.Do(f.ctx, hook.Sent()...).Err(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := f.rdb.Client.XLen(f.ctx, f.rec.Stream(shardOf("item"))).Result(); entries != 0 || f.state("item") != StateDone {
		t.Errorf("a late resend of the redelivery queued the settled item again (%d entries, state %s)", entries, f.state("item"))
	}
}

// Package outbox is Crowdgate's one durable delivery mechanism: work
// written to Redis is handed to a Handler, on some replica, until the
// Handler settles it. The submission outbox (payments to Toloka) and the
// webhook deliveries both run on it.
//
// Layout. Work is spread over Shards() shards (a count that may grow while
// the queue runs: the reader creates the new shards' groups and reads them
// from then on); each shard has a Redis stream
// (entries "t" = tenant, "s" = item id) read by one consumer group, and a
// retry schedule (a sorted set of "tenant TAB item" scored by the due time
// in unix ms). A shard's keys share one hash tag, so a Lua script changes a
// record, its stream and its schedule atomically, also on Redis Cluster.
//
// Invariants (what a user of the package may rely on):
//
//   - At least once. An entry is acknowledged only by the user's settle
//     script (atomically with the record's new state). An entry read by a
//     replica that dies stays pending and is reclaimed (XAUTOCLAIM) by
//     another replica once idle for VisibilityTimeout; an item whose
//     outcome could not be recorded is thus offered again.
//   - One lease holder. A Handler first takes the item's lease (a token
//     and an expiry in Redis: the record's ls field for records of this
//     package's layout, taken by Claim; a key of its own for the
//     submission outbox); while it lives no other replica attempts the item, so no two
//     attempts of one item are ever in flight when the lease outlasts an
//     attempt. Entries whose lease is busy stay pending and come back.
//   - Durable schedule. A retry is a member of the shard's schedule, written
//     in the same script as the outcome; Promote moves due members back to
//     the stream (only for records still queued and without a live entry),
//     so a retry survives every restart and is never doubled.
//   - Bounded work. A replica reads only for the slots it has free: its
//     Concurrency workers plus Prefetch entries read ahead, which wait for
//     a worker (a read across shards may bring up to one entry per shard
//     more); when its context ends, the reader stops and the workers
//     finish the entries already read.
//   - Observability. Reclaims, the oldest waiting entry's age (lag) and the
//     ready and scheduled depths are reported through Hooks; consumers of
//     replicas gone for an hour, holding nothing, are removed.
//
// The Handler decides what an attempt is and what its outcome means; the
// Queue only moves entries. Records of the generic layout (records.go:
// Enqueue, Claim, Settle) give a new user all of the above without writing
// Lua; the submission outbox keeps its own claim and finish scripts, which
// also keep a pool's totals, and plugs them in through its Handler. Every
// record, of either kind, keeps its state in the hash fields Promote reads:
// st ("1" while queued) and eid (its live stream entry, "" when none).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Entry is one stream entry: an item of a tenant to work on.
type Entry struct {
	// Shard is the shard whose stream carries the entry.
	Shard int
	// StreamID is the stream entry's id ("<ms>-<seq>").
	StreamID string
	// Tenant owns the item.
	Tenant string
	// Item is the item's id (a submission id, a delivery id).
	Item string
}

// Handler works on one entry a worker read. It must leave the entry pending
// when it cannot record an outcome (then it is reclaimed later), and
// acknowledge it (in its settle script) when it does.
type Handler func(ctx context.Context, e Entry)

// Hooks report the queue's measurements; nil hooks are skipped. Lag is
// polled only when OnLag is set.
type Hooks struct {
	// OnReclaimed counts entries taken over from a consumer that left them.
	OnReclaimed func(n int)
	// OnLag reports the age of the oldest entry waiting (in a stream, or
	// overdue in a schedule) and the ready and scheduled depths.
	OnLag func(lag time.Duration, ready, scheduled int64)
}

// Config describes one outbox.
type Config struct {
	// Name prefixes log lines ("submission").
	Name string
	// Redis holds the outbox.
	Redis redis.UniversalClient
	// Shards is the number of shards (streams) to read, asked before every
	// read: it may grow while the queue runs (a shard count raised on a
	// running system: the new shards' groups are created as they appear),
	// and should never shrink while a shard it drops holds work. At least 1.
	Shards func() int
	// Group is the consumer group every replica reads with.
	Group string
	// Consumer names this replica in the group.
	Consumer string
	// Stream and Schedule name a shard's stream and retry schedule.
	Stream, Schedule func(shard int) string
	// RecordPrefix is the key prefix of a shard's records: a record's key
	// is RecordPrefix(shard) + tenant + ":" + item. Promote reads it (a
	// due member gets a new entry only while its record's st is "1" and
	// its eid is "").
	RecordPrefix func(shard int) string
	// Handle works on each entry read.
	Handle Handler
	// Concurrency is the number of workers; at least 1.
	Concurrency int
	// Prefetch is how many entries the reader reads ahead of the workers
	// (0: none). Read-ahead entries wait in memory, pending in this
	// replica's consumer, so a worker that finishes finds its next entry
	// at once instead of waiting for a read's round trip. They are worked
	// on before Run returns; an entry that waits past VisibilityTimeout
	// may be reclaimed by another replica, whose lease then makes this
	// replica's Handler skip it.
	Prefetch int
	// PollInterval is how often an idle reader looks for due retries.
	PollInterval time.Duration
	// VisibilityTimeout is the idle time after which an unacknowledged
	// entry is reclaimed.
	VisibilityTimeout time.Duration
	// Wake, when set, wakes an idle reader (new work was written).
	Wake <-chan struct{}
	// Hooks report measurements.
	Hooks Hooks
	// Log receives the queue's logs (slog.Default when nil).
	Log *slog.Logger
}

// Queue reads an outbox and hands its entries to a Handler.
type Queue struct {
	cfg Config
}

// New returns a queue; it fails on an incomplete Config.
func New(cfg Config) (*Queue, error) {
	switch {
	case cfg.Redis == nil, cfg.Stream == nil, cfg.Schedule == nil, cfg.RecordPrefix == nil:
		return nil, errors.New("outbox: Config.Redis, Stream, Schedule and RecordPrefix are required")
	case cfg.Shards == nil, cfg.Group == "", cfg.Consumer == "":
		return nil, errors.New("outbox: Config.Shards, Group and Consumer are required")
	case cfg.PollInterval <= 0, cfg.VisibilityTimeout <= 0:
		return nil, errors.New("outbox: Config.PollInterval and VisibilityTimeout must be positive")
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	cfg.Prefetch = max(cfg.Prefetch, 0)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = "outbox"
	}
	return &Queue{cfg: cfg}, nil
}

// shards is how many shards to read now (at least 1).
func (q *Queue) shards() int { return max(q.cfg.Shards(), 1) }

// Run reads the outbox until ctx is done: one reader takes new entries of
// every shard's stream in this replica's consumer, reclaims entries left
// unacknowledged past VisibilityTimeout and moves due retries back to the
// streams; Concurrency workers run the Handler on what it reads. When ctx
// ends the reader stops and Run returns once the workers have finished the
// entries already read, the read-ahead ones included (they run on a
// context that is not cancelled: each attempt must bound itself).
func (q *Queue) Run(ctx context.Context) {
	if q.cfg.Handle == nil {
		panic("outbox: Run without a Handler")
	}
	slots := q.slots()
	work := make(chan Entry, slots)
	free := &freeWorkers{n: slots, freed: make(chan struct{}, 1)}
	dctx := context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	for range q.cfg.Concurrency {
		wg.Go(func() {
			for e := range work {
				q.cfg.Handle(dctx, e)
				free.release()
			}
		})
	}
	q.read(ctx, work, free)
	close(work)
	wg.Wait()
}

// slots is how many entries a replica holds at most: one per worker and
// the read-ahead ones.
func (q *Queue) slots() int { return q.cfg.Concurrency + q.cfg.Prefetch }

// freeWorkers counts the free slots (workers and read-ahead room) not
// holding an entry: the reader takes them before it hands entries out,
// workers give them back when done.
type freeWorkers struct {
	mu    sync.Mutex
	n     int
	freed chan struct{} // signalled when a worker gives one back
}

// take takes up to want free workers and returns how many it took.
func (f *freeWorkers) take(want int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	got := min(want, f.n)
	f.n -= got
	return got
}

// give returns n workers taken but not used.
func (f *freeWorkers) give(n int) {
	f.mu.Lock()
	f.n += n
	f.mu.Unlock()
}

func (f *freeWorkers) available() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// release gives back one worker and wakes the reader.
func (f *freeWorkers) release() {
	f.give(1)
	select {
	case f.freed <- struct{}{}:
	default:
	}
}

// read feeds work until ctx is done. It reads only for slots that are
// free, and waits until at least a quarter of them are (or a poll
// interval has passed) before it reads again: under load it reads in
// batches rather than a few entries per round trip.
func (q *Queue) read(ctx context.Context, work chan<- Entry, free *freeWorkers) {
	var lastPromote, lastReclaim, lastLag, lastCleanup time.Time
	var cursors []string // XAUTOCLAIM cursor of each shard
	// Reclaims are a quarter of the visibility timeout apart, plus up to
	// half that again at random: replicas whose reclaims kept the same
	// pace would find an entry left pending always first at the one that
	// left it last (one that cannot work on it, say).
	reclaimEvery := max(q.cfg.VisibilityTimeout/4, q.cfg.PollInterval)
	reclaimWait := reclaimEvery
	batch := max(q.slots()/4, 1)
	for ctx.Err() == nil {
		for n := q.shards(); len(cursors) < n; {
			q.EnsureGroup(ctx, len(cursors))
			cursors = append(cursors, "0-0")
		}
		now := time.Now()
		if now.Sub(lastPromote) >= q.cfg.PollInterval {
			q.Promote(ctx)
			lastPromote = now
		}
		var got []Entry
		if room := free.take(q.slots()); room > 0 {
			// A due reclaim goes first, with a quarter of the room (at
			// least one slot): entries a dead replica left are taken
			// back however full a backlog keeps every read of new ones.
			// The room new entries leave goes to the reclaim too.
			reclaiming := now.Sub(lastReclaim) >= reclaimWait
			if reclaiming {
				share := max(room/4, 1)
				got = q.reclaim(ctx, share, cursors)
				reclaiming = len(got) == share // more may be left
				lastReclaim = now
				reclaimWait = reclaimEvery + rand.N(reclaimEvery/2+1)
			}
			if rest := room - len(got); rest > 0 {
				got = append(got, q.ReadNew(ctx, rest)...)
			}
			if rest := room - len(got); rest > 0 && reclaiming {
				got = append(got, q.reclaim(ctx, rest, cursors)...)
			}
			// ReadNew may return up to one entry per shard more than
			// room: the extra ones wait for a slot below.
			if len(got) < room {
				free.give(room - len(got))
			} else if len(got) > room {
				free.give(-(len(got) - room))
			}
		}
		for _, e := range got {
			// Blocks while every worker is busy (the extra entries of a
			// read across shards).
			work <- e
		}
		if q.cfg.Hooks.OnLag != nil && now.Sub(lastLag) >= 5*time.Second {
			q.updateLag(ctx)
			lastLag = now
		}
		if now.Sub(lastCleanup) >= 10*time.Minute {
			q.cleanupConsumers(ctx)
			lastCleanup = now
		}
		if len(got) > 0 {
			// More may be waiting: read again once a batch of workers is
			// free (or the poll interval has passed).
			q.waitFree(ctx, free, batch)
			continue
		}
		t := time.NewTimer(q.cfg.PollInterval)
		select {
		case <-ctx.Done():
		case <-q.cfg.Wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// waitFree waits until at least want workers are free, the poll interval
// has passed or ctx is done.
func (q *Queue) waitFree(ctx context.Context, free *freeWorkers, want int) {
	t := time.NewTimer(q.cfg.PollInterval)
	defer t.Stop()
	for free.available() < want {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-free.freed:
		}
	}
}

// EnsureGroup creates shard's stream and consumer group if missing. It
// reads the stream from its start, so entries written before the group
// existed are handled too.
func (q *Queue) EnsureGroup(ctx context.Context, shard int) {
	err := q.cfg.Redis.XGroupCreateMkStream(ctx, q.cfg.Stream(shard), q.cfg.Group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") && ctx.Err() == nil {
		q.cfg.Log.Warn(q.cfg.Name+": could not create the outbox consumer group", slog.Int("shard", shard), slog.String("error", err.Error()))
	}
}

// ReadNew reads up to about free new entries across the shards: a share
// of free from every shard in one round trip (a pipeline; Redis Cluster
// splits it by node), then, while fewer than free came and some shard
// gave its whole share (it may hold more), the rest shared among those.
// It may bring up to one entry per shard more than free (the shares are
// rounded up).
func (q *Queue) ReadNew(ctx context.Context, free int) []Entry {
	shards := make([]int, q.shards())
	for i := range shards {
		shards[i] = i
	}
	var out []Entry
	for len(shards) > 0 && len(out) < free {
		share := (free - len(out) + len(shards) - 1) / len(shards)
		got, full := q.readShards(ctx, shards, share)
		out = append(out, got...)
		shards = full
	}
	return out
}

// readShards reads up to count new entries of each shard in one round
// trip, and names the shards that gave count (they may hold more).
func (q *Queue) readShards(ctx context.Context, shards []int, count int) (out []Entry, full []int) {
	cmds := make([]*redis.XStreamSliceCmd, len(shards))
	_, _ = q.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, shard := range shards {
			cmds[i] = p.XReadGroup(ctx, &redis.XReadGroupArgs{
				Group: q.cfg.Group, Consumer: q.cfg.Consumer, Streams: []string{q.cfg.Stream(shard), ">"},
				Count: int64(count), Block: -1,
			})
		}
		return nil
	})
	for i, c := range cmds {
		shard := shards[i]
		res, err := c.Result()
		if err != nil {
			switch {
			case errors.Is(err, redis.Nil) || ctx.Err() != nil:
			case redis.HasErrorPrefix(err, "NOGROUP"):
				q.EnsureGroup(ctx, shard)
			default:
				q.cfg.Log.Warn(q.cfg.Name+": could not read the outbox", slog.Int("shard", shard), slog.String("error", err.Error()))
			}
			continue
		}
		n := 0
		for _, st := range res {
			n += len(st.Messages)
			out = append(out, q.entries(shard, st.Messages)...)
		}
		if n >= count {
			full = append(full, shard)
		}
	}
	return out, full
}

// reclaim takes up to free entries that other consumers (or this one) took
// and left unacknowledged for VisibilityTimeout: their replica died, or
// their item's lease was busy.
func (q *Queue) reclaim(ctx context.Context, free int, cursors []string) []Entry {
	var out []Entry
	// From a shard taken at random: starting at shard 0 every time, a few
	// busy low shards would fill every pass and the last ones wait.
	first := rand.N(len(cursors))
	for i := 0; i < len(cursors) && len(out) < free; i++ {
		shard := (first + i) % len(cursors)
		msgs, next, err := q.cfg.Redis.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.cfg.Stream(shard), Group: q.cfg.Group, Consumer: q.cfg.Consumer,
			MinIdle: q.cfg.VisibilityTimeout, Start: cursors[shard], Count: int64(free - len(out)),
		}).Result()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, redis.Nil) {
				if redis.HasErrorPrefix(err, "NOGROUP") {
					q.EnsureGroup(ctx, shard)
				} else {
					q.cfg.Log.Warn(q.cfg.Name+": could not reclaim outbox entries", slog.Int("shard", shard), slog.String("error", err.Error()))
				}
			}
			continue
		}
		cursors[shard] = next
		if len(msgs) > 0 && q.cfg.Hooks.OnReclaimed != nil {
			q.cfg.Hooks.OnReclaimed(len(msgs))
		}
		out = append(out, q.entries(shard, msgs)...)
	}
	return out
}

func (q *Queue) entries(shard int, msgs []redis.XMessage) []Entry {
	out := make([]Entry, 0, len(msgs))
	for _, m := range msgs {
		t, _ := m.Values["t"].(string)
		id, _ := m.Values["s"].(string)
		if id == "" {
			// Not ours: acknowledge it so it does not come back.
			q.cfg.Redis.XAck(context.Background(), q.cfg.Stream(shard), q.cfg.Group, m.ID)
			continue
		}
		out = append(out, Entry{Shard: shard, StreamID: m.ID, Tenant: t, Item: id})
	}
	return out
}

// Promote moves due retries of every shard back to the streams, in one
// round trip.
func (q *Queue) Promote(ctx context.Context) {
	calls := make([]storage.Call, q.shards())
	for shard := range calls {
		calls[shard] = storage.Call{Keys: []string{q.cfg.Schedule(shard), q.cfg.Stream(shard)}, Args: []any{500, q.cfg.RecordPrefix(shard)}}
	}
	cmds, err := storage.EvalAll(ctx, q.cfg.Redis, promoteScript, calls, nil)
	for _, c := range cmds {
		if err == nil {
			err = c.Err()
		}
	}
	if err != nil && ctx.Err() == nil {
		q.cfg.Log.Warn(q.cfg.Name+": could not move due retries to the outbox", slog.String("error", err.Error()))
	}
}

// updateLag reports the age of the oldest entry waiting in the streams or
// overdue in the schedules, and how many wait.
func (q *Queue) updateLag(ctx context.Context) {
	now := time.Now()
	var oldest time.Time
	var ready, scheduled int64
	rdb := q.cfg.Redis
	for shard := range q.shards() {
		if first, err := rdb.XRangeN(ctx, q.cfg.Stream(shard), "-", "+", 1).Result(); err == nil && len(first) > 0 {
			if t := EntryTime(first[0].ID); !t.IsZero() && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
		if n, err := rdb.XLen(ctx, q.cfg.Stream(shard)).Result(); err == nil {
			ready += n
		}
		if z, err := rdb.ZRangeWithScores(ctx, q.cfg.Schedule(shard), 0, 0).Result(); err == nil && len(z) > 0 {
			if t := time.UnixMilli(int64(z[0].Score)); t.Before(now) && (oldest.IsZero() || t.Before(oldest)) {
				oldest = t
			}
		}
		if n, err := rdb.ZCard(ctx, q.cfg.Schedule(shard)).Result(); err == nil {
			scheduled += n
		}
	}
	var lag time.Duration
	if !oldest.IsZero() {
		lag = max(now.Sub(oldest), 0)
	}
	q.cfg.Hooks.OnLag(lag, ready, scheduled)
}

// EntryTime is the time in a stream entry id ("<ms>-<seq>"); zero for an
// id that is not one.
func EntryTime(id string) time.Time {
	var ms int64
	for i := 0; i < len(id) && id[i] != '-'; i++ {
		if id[i] < '0' || id[i] > '9' {
			return time.Time{}
		}
		ms = ms*10 + int64(id[i]-'0')
	}
	return time.UnixMilli(ms)
}

// cleanupConsumers removes consumers of other replicas that hold nothing and
// have been idle for an hour (replicas that went away), so the group does
// not grow for ever.
func (q *Queue) cleanupConsumers(ctx context.Context) {
	for shard := range q.shards() {
		cs, err := q.cfg.Redis.XInfoConsumers(ctx, q.cfg.Stream(shard), q.cfg.Group).Result()
		if err != nil {
			continue
		}
		for _, c := range cs {
			if c.Name != q.cfg.Consumer && c.Pending == 0 && c.Idle > time.Hour {
				q.cfg.Redis.XGroupDelConsumer(ctx, q.cfg.Stream(shard), q.cfg.Group, c.Name)
			}
		}
	}
}

// SchedMember is an item's member in its shard's schedule.
func SchedMember(tenant, item string) string { return tenant + "\t" + item }

// String renders an entry for logs.
func (e Entry) String() string { return fmt.Sprintf("%d/%s/%s", e.Shard, e.Tenant, e.Item) }

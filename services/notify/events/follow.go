package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

const (
	// batch is the most entries read from one stream at a time.
	batch = 200
	// reclaimIdle is how long an entry stays with a consumer that has not
	// acknowledged it (it failed, or its replica died) before another
	// takes it.
	reclaimIdle = 30 * time.Second
	// reclaimEvery is how often a consumer looks for such entries.
	reclaimEvery = 5 * time.Second
	// forgetIdle is how long a member of a group with nothing pending may
	// be idle before it is removed from the group (a replica that is gone:
	// each run of a replica joins under a new name).
	forgetIdle = time.Hour
	// forgetEvery is how often a consumer removes such members.
	forgetEvery = 10 * time.Minute
)

// Follow calls handle for every event of every tenant's log (Config.Tenants
// lists them) as the consumer group named group, until ctx ends. handle
// gets a batch: up to 200 events of one tenant, in log order, read
// together, so it can do for all of them at once what it would do for each
// (a batch's events share its round trips). Each event is handled at least
// once across every replica following with the same group: a batch whose
// handle fails (or whose replica dies first) is offered again once
// reclaimIdle has passed. Batches of different tenants are handled at the
// same time (handle must be safe for concurrent use). A group created now
// starts at the oldest event kept.
func (l *Log) Follow(ctx context.Context, group string, handle func(ctx context.Context, evs []*crowdgatev1.Event) error) {
	keys := func(ctx context.Context) ([]string, error) {
		ts, err := l.tenants(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]string, len(ts))
		for i, t := range ts {
			out[i], _ = Keys(l.prefix, t)
		}
		return out, nil
	}
	l.consume(ctx, group, keys, func(ctx context.Context, _ string, msgs []redis.XMessage) error {
		evs := make([]*crowdgatev1.Event, 0, len(msgs))
		for _, m := range msgs {
			if m.Values == nil {
				continue // deleted while pending: nothing to handle
			}
			ev, err := decode(m.ID, m.Values)
			if err != nil {
				l.log.Error("events: unreadable event skipped", "group", group, "entry", m.ID, "error", err.Error())
				continue
			}
			evs = append(evs, ev)
		}
		if len(evs) == 0 {
			return nil
		}
		return handle(ctx, evs)
	})
}

// consumer reads streams as one member of a consumer group.
type consumer struct {
	l       *Log
	group   string
	name    string
	handle  func(ctx context.Context, key string, msgs []redis.XMessage) error
	created map[string]bool
	// idle is how long an entry stays pending before reclaim takes it
	// (reclaimIdle).
	idle time.Duration
	// cursors is where each stream's next reclaim goes on (XAUTOCLAIM's
	// cursor; "0-0", the start, once a pass is done), so that entries
	// that keep failing at the head of the pending list cannot hide the
	// ones behind them.
	cursors map[string]string
}

// consume runs a consumer over the streams keys lists until ctx ends.
func (l *Log) consume(ctx context.Context, group string, keys func(context.Context) ([]string, error),
	handle func(ctx context.Context, key string, msgs []redis.XMessage) error) {
	c := &consumer{l: l, group: group, name: consumerName(), handle: handle, created: map[string]bool{},
		idle: reclaimIdle, cursors: map[string]string{}}
	var lastReclaim, lastForget time.Time
	for ctx.Err() == nil {
		woken := l.wake.wait()
		ks, err := keys(ctx)
		if err != nil {
			l.log.Warn("events: cannot list the streams to follow", "group", group, "error", err.Error())
		}
		n := c.readNew(ctx, ks)
		if time.Since(lastReclaim) >= reclaimEvery {
			lastReclaim = time.Now()
			n += c.reclaim(ctx, ks)
		}
		if time.Since(lastForget) >= forgetEvery {
			lastForget = time.Now()
			c.forgetGone(ctx, ks)
			if err == nil {
				c.keepOnly(ks)
			}
		}
		if n > 0 {
			continue
		}
		_ = l.idle(ctx, woken) // the loop ends with ctx
	}
}

func consumerName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// ensureGroups creates the group on streams that may not have it yet.
func (c *consumer) ensureGroups(ctx context.Context, keys []string) {
	var todo []string
	for _, k := range keys {
		if !c.created[k] {
			todo = append(todo, k)
		}
	}
	if len(todo) == 0 {
		return
	}
	cmds := make([]*redis.StatusCmd, len(todo))
	_, _ = c.l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range todo {
			cmds[i] = p.XGroupCreateMkStream(ctx, k, c.group, "0")
		}
		return nil
	})
	for i, cmd := range cmds {
		if err := cmd.Err(); err == nil || strings.HasPrefix(err.Error(), "BUSYGROUP") {
			c.created[todo[i]] = true
		}
	}
}

// readNew reads and handles what no member of the group has read yet, in
// one pipeline over every stream; it returns how many entries it read.
func (c *consumer) readNew(ctx context.Context, keys []string) int {
	c.ensureGroups(ctx, keys)
	cmds := make([]*redis.XStreamSliceCmd, len(keys))
	_, _ = c.l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: c.group, Consumer: c.name,
				Streams: []string{k, ">"}, Count: batch, Block: -1})
		}
		return nil
	})
	n := 0
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		streams, err := cmd.Result()
		if err != nil {
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				delete(c.created, keys[i])
			} else if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
				c.l.log.Warn("events: read failed", "group", c.group, "error", err.Error())
			}
			continue
		}
		for _, s := range streams {
			n += len(s.Messages)
			wg.Go(func() { c.handleAll(ctx, keys[i], s.Messages) })
		}
	}
	wg.Wait()
	return n
}

// reclaim takes over entries another member (or this one) read and did not
// acknowledge within c.idle, and handles them: up to a batch a stream,
// going on each time from where the last reclaim of the stream stopped.
func (c *consumer) reclaim(ctx context.Context, keys []string) int {
	n := 0
	for _, k := range keys {
		start := c.cursors[k]
		if start == "" {
			start = "0-0"
		}
		msgs, next, err := c.l.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: k, Group: c.group, Consumer: c.name,
			MinIdle: c.idle, Start: start, Count: batch}).Result()
		if err != nil {
			continue
		}
		c.cursors[k] = next
		n += len(msgs)
		c.handleAll(ctx, k, msgs)
	}
	return n
}

// handleAll handles msgs, one stream's batch, and acknowledges them when
// that succeeds; when it fails they stay pending and are reclaimed later.
func (c *consumer) handleAll(ctx context.Context, key string, msgs []redis.XMessage) {
	if len(msgs) == 0 {
		return
	}
	if err := c.handle(ctx, key, msgs); err != nil {
		if ctx.Err() == nil {
			c.l.log.Warn("events: handling failed; the batch is offered again later", "group", c.group,
				"entries", len(msgs), "first", msgs[0].ID, "error", err.Error())
		}
		return
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	if err := c.l.rdb.XAck(ctx, key, c.group, ids...).Err(); err != nil && ctx.Err() == nil {
		c.l.log.Warn("events: acknowledging failed; the entries are offered again", "group", c.group, "error", err.Error())
	}
}

// keepOnly forgets what the consumer knows of streams not in keys (a
// tenant removed), so its maps do not grow with every tenant it ever
// followed.
func (c *consumer) keepOnly(keys []string) {
	listed := make(map[string]bool, len(keys))
	for _, k := range keys {
		listed[k] = true
	}
	for k := range c.created {
		if !listed[k] {
			delete(c.created, k)
		}
	}
	for k := range c.cursors {
		if !listed[k] {
			delete(c.cursors, k)
		}
	}
}

// forgetGone removes from the group the members with nothing pending that
// have been idle for forgetIdle: replicas that are gone.
func (c *consumer) forgetGone(ctx context.Context, keys []string) {
	for _, k := range keys {
		members, err := c.l.rdb.XInfoConsumers(ctx, k, c.group).Result()
		if err != nil {
			continue
		}
		for _, m := range members {
			if m.Name != c.name && m.Pending == 0 && m.Idle >= forgetIdle {
				c.l.rdb.XGroupDelConsumer(ctx, k, c.group, m.Name)
			}
		}
	}
}

package events

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// relayLease is how long a replica relays an intent stream alone without
// renewing its lease (it renews it on every pass, many times a second
// while intents flow); another replica takes the stream over once it has
// expired (its holder died or stopped).
const relayLease = 10 * time.Second

// relayLeaseScript takes or renews the lease KEYS[1] for token ARGV[1] for
// ARGV[2] ms; 1 when the caller holds it.
var relayLeaseScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript gives up the lease KEYS[1] if token ARGV[1] holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
`)

// Relay copies every intent (an Event in field IntentField, written by a
// script of another package atomically with the change it reports) of the
// streams list returns to its tenant's log, then deletes it, until ctx
// ends. list is asked before every read, so the streams may grow at the
// end of the list while Relay runs. It looks when the writer says so
// (Intended), and at every poll otherwise (intents written by another
// replica).
//
// One replica at a time relays a stream (a lease per stream, the stream's
// key + ":relay", renewed while it works): it reads the stream from its
// oldest intent, records a batch in order (one pipeline, which Redis runs
// in order), and deletes the intents recorded up to the first that failed.
// So a stream's events are recorded in the order its intents were written
// (a submission's dead, retried and delivered stay in that order), and each
// intent becomes exactly one event across replicas and faults: an intent
// is deleted only after its event is recorded, and recording is
// idempotent, so a replica that takes a stream over repeats at most what
// its previous holder recorded but had not yet deleted, which records
// nothing new. One read covers every stream; the streams with intents are
// relayed side by side.
func (l *Log) Relay(ctx context.Context, list func() []string) {
	token := consumerName()
	var streams []string
	var renewed []time.Time // when this replica last took or renewed each stream's lease
	for ctx.Err() == nil {
		if current := list(); len(current) != len(streams) {
			streams = current
			renewed = append(renewed, make([]time.Time, max(len(current)-len(renewed), 0))...)[:len(current)]
		}
		woken := l.intents.wait()
		// Every stream's oldest intents in one round trip.
		cmds := make([]*redis.XMessageSliceCmd, len(streams))
		_, _ = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, s := range streams {
				cmds[i] = p.XRangeN(ctx, s, "-", "+", batch)
			}
			return nil
		})
		var n atomic.Int64
		var wg sync.WaitGroup
		for i, cmd := range cmds {
			msgs, err := cmd.Result()
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, redis.Nil) {
					l.log.Warn("events: cannot read an intent stream", "stream", streams[i], "error", err.Error())
				}
				continue
			}
			if len(msgs) > 0 {
				wg.Go(func() { n.Add(int64(l.relayBatch(ctx, streams[i], token, &renewed[i], msgs))) })
			}
		}
		wg.Wait()
		if n.Load() > 0 {
			continue
		}
		_ = l.idle(ctx, woken) // the loop ends with ctx
	}
	// Hand the streams over at once rather than after relayLease.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	for _, s := range streams {
		_ = releaseScript.Run(rctx, l.rdb, []string{s + ":relay"}, token).Err()
	}
}

// relayBatch records msgs, the oldest intents of stream, if this replica
// holds (or can take) the stream's lease, and returns how many it
// recorded. The lease is renewed once a third of it has passed since
// *renewed, so a busy stream costs no lease write per batch.
func (l *Log) relayBatch(ctx context.Context, stream, token string, renewed *time.Time, msgs []redis.XMessage) int {
	if time.Since(*renewed) >= relayLease/3 {
		held, err := relayLeaseScript.Run(ctx, l.rdb, []string{stream + ":relay"}, token, relayLease.Milliseconds()).Int()
		if err != nil || held != 1 {
			if err != nil && ctx.Err() == nil {
				l.log.Warn("events: cannot take an intent stream's relay lease", "stream", stream, "error", err.Error())
			}
			*renewed = time.Time{}
			return 0
		}
		*renewed = time.Now()
	}
	calls := make([]storage.Call, 0, len(msgs))
	at := make([]int, 0, len(msgs)) // msgs index of each call
	for i, m := range msgs {
		raw, _ := m.Values[IntentField].(string)
		ev := &crowdgatev1.Event{}
		if err := proto.Unmarshal([]byte(raw), ev); err != nil || ev.GetTenantId() == "" || ev.GetEventId() == "" {
			l.log.Error("events: unreadable intent dropped", "entry", m.ID)
			continue
		}
		log, seen := Keys(l.prefix, ev.GetTenantId())
		calls = append(calls, storage.Call{Keys: []string{log, seen}, Args: []any{ev.GetEventId(), raw, l.set.Retention.Milliseconds()}})
		at = append(at, i)
	}
	// Recorded: every intent before the first whose append failed
	// (unreadable ones included: they are dropped).
	done := len(msgs)
	cmds, err := storage.EvalAll(ctx, l.rdb, appendScript, calls, nil)
	for c, cmd := range cmds {
		if e := cmd.Err(); err != nil || (e != nil && !errors.Is(e, redis.Nil)) {
			if err == nil {
				err = e
			}
			done = at[c]
			break
		}
	}
	if err != nil && ctx.Err() == nil {
		l.log.Warn("events: recording intents failed; they are relayed again", "stream", stream, "error", err.Error())
	}
	if done == 0 {
		return 0
	}
	l.wake.notify()
	ids := make([]string, done)
	for i := range done {
		ids[i] = msgs[i].ID
	}
	if err := l.rdb.XDel(ctx, stream, ids...).Err(); err != nil && ctx.Err() == nil {
		l.log.Warn("events: cannot delete relayed intents; they are relayed again (recording nothing new)", "stream", stream, "error", err.Error())
	}
	return done
}

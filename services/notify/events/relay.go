package events

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
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

// Relay copies every intent of streams (an Event in field IntentField,
// written by a script of another package atomically with the change it
// reports) to its tenant's log, then deletes it, until ctx ends.
//
// One replica at a time relays a stream (a lease per stream, the stream's
// key + ":relay", renewed on every pass): it reads the stream from its
// oldest intent, records the intents one after another up to the first
// failure, and deletes those recorded. So a stream's events are recorded
// in the order its intents were written (a submission's dead, retried and
// delivered stay in that order), and each intent becomes exactly one event
// across replicas and faults: an intent is deleted only after its event is
// recorded, and recording is idempotent, so a replica that takes a stream
// over repeats at most what its previous holder recorded but had not yet
// deleted, which records nothing new.
func (l *Log) Relay(ctx context.Context, streams []string) {
	token := consumerName()
	defer func() {
		// Hand the streams over at once rather than after relayLease.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		for _, s := range streams {
			_ = releaseScript.Run(rctx, l.rdb, []string{s + ":relay"}, token).Err()
		}
	}()
	for ctx.Err() == nil {
		woken := l.wake.wait()
		n := 0
		for _, s := range streams {
			n += l.relayStream(ctx, s, token)
		}
		if n > 0 {
			continue
		}
		t := time.NewTimer(l.set.Poll)
		select {
		case <-ctx.Done():
		case <-woken:
		case <-t.C:
		}
		t.Stop()
	}
}

// relayStream relays up to batch intents of stream if this replica holds
// (or can take) its lease, and returns how many it recorded.
func (l *Log) relayStream(ctx context.Context, stream, token string) int {
	held, err := relayLeaseScript.Run(ctx, l.rdb, []string{stream + ":relay"}, token, relayLease.Milliseconds()).Int()
	if err != nil || held != 1 {
		if err != nil && ctx.Err() == nil {
			l.log.Warn("events: cannot take an intent stream's relay lease", "stream", stream, "error", err.Error())
		}
		return 0
	}
	msgs, err := l.rdb.XRangeN(ctx, stream, "-", "+", batch).Result()
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, redis.Nil) {
			l.log.Warn("events: cannot read an intent stream", "stream", stream, "error", err.Error())
		}
		return 0
	}
	var done []string
	for _, m := range msgs {
		raw, _ := m.Values[IntentField].(string)
		ev := &crowdgatev1.Event{}
		if err := proto.Unmarshal([]byte(raw), ev); err != nil || ev.GetTenantId() == "" || ev.GetEventId() == "" {
			l.log.Error("events: unreadable intent dropped", "entry", m.ID)
			done = append(done, m.ID)
			continue
		}
		if err := l.appendRaw(ctx, ev.GetTenantId(), ev.GetEventId(), []byte(raw)); err != nil {
			if ctx.Err() == nil {
				l.log.Warn("events: recording an intent failed; it is relayed again", "entry", m.ID, "error", err.Error())
			}
			break // the rest wait: a stream's events keep their order
		}
		done = append(done, m.ID)
	}
	if len(done) == 0 {
		return 0
	}
	if err := l.rdb.XDel(ctx, stream, done...).Err(); err != nil && ctx.Err() == nil {
		l.log.Warn("events: cannot delete relayed intents; they are relayed again (recording nothing new)", "stream", stream, "error", err.Error())
	}
	return len(done)
}

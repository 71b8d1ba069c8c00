package outbox

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/platform/storage"
)

var (
	//go:embed lua/promote.lua
	promoteLua string
	//go:embed lua/enqueue.lua
	enqueueLua string
	//go:embed lua/claim.lua
	claimLua string
	//go:embed lua/settle.lua
	settleLua string

	// promoteScript moves due members of a schedule to the stream for
	// records still queued (st "1") without a live entry (eid ""): every
	// queue's, the submission outbox's included.
	promoteScript = redis.NewScript(promoteLua)
	enqueueScript = redis.NewScript(enqueueLua)
	claimScript   = redis.NewScript(claimLua)
	settleScript  = redis.NewScript(settleLua)
)

// Record states as stored in a record's "st" field.
const (
	StateQueued = "1"
	StateDone   = "2"
	StateDead   = "3"
)

// Outcomes given to Settle.
const (
	// Done settles the item: it was handled.
	Done = "done"
	// Retry schedules another attempt after a backoff.
	Retry = "retry"
	// Dead settles the item as failed for good.
	Dead = "dead"
	// Drop settles the item as dead without counting an attempt (nothing
	// was attempted: its target is gone).
	Drop = "drop"
	// Defer schedules the item again after Backoff without counting an
	// attempt or journaling one (nothing was attempted: not now). Its
	// entry is acknowledged, so a deferred item waits in the schedule, not
	// among the entries a replica holds.
	Defer = "defer"
)

// Records is the generic record layout: a record hash per item (st, eid,
// att = attempts ever, ratt = attempts of the current run, pb = payload,
// ls = the lease, "<token>|<expiry in unix ms>" or "" when free, lt = the
// lease token of the last settlement recorded, so that one sent twice
// records nothing twice, and the user's fields), a journal list per item,
// and a stream and a schedule per shard. Every key of a shard carries the
// hash tag {<Name>:<shard>}:
//
//	<Prefix><Name>:{<Name>:N}:<tenant>:<item>   record (hash)
//	<Prefix><Name>j:{<Name>:N}:<tenant>:<item>  journal (list)
//	<Prefix><Name>o:{<Name>:N}                  stream
//	<Prefix><Name>s:{<Name>:N}                  schedule (zset)
type Records struct {
	// Redis holds the records.
	Redis redis.UniversalClient
	// Workers, when set, carries Claim and Settle, the calls every attempt
	// makes (Redis when nil): an autopipelined client
	// (storage.AutoPipelined) lets the attempts in flight share round
	// trips. Both are safe to resend.
	Workers redis.Scripter
	// Prefix starts every key; Name names the outbox ("wh").
	Prefix, Name string
	// Group is the consumer group of the streams.
	Group string
	// JournalMax bounds an item's journal (default 100).
	JournalMax int
	// Retention is how long a settled record and its journal are kept.
	Retention time.Duration
}

func (r *Records) tag(shard int) string { return "{" + r.Name + ":" + strconv.Itoa(shard) + "}" }

// RecordPrefix is the key prefix of shard's records (Config.RecordPrefix).
func (r *Records) RecordPrefix(shard int) string { return r.Prefix + r.Name + ":" + r.tag(shard) + ":" }

// Record is an item's record key.
func (r *Records) Record(shard int, tenant, item string) string {
	return r.RecordPrefix(shard) + tenant + ":" + item
}

// Journal is an item's journal key.
func (r *Records) Journal(shard int, tenant, item string) string {
	return r.Prefix + r.Name + "j:" + r.tag(shard) + ":" + tenant + ":" + item
}

// Stream is shard's stream (Config.Stream).
func (r *Records) Stream(shard int) string { return r.Prefix + r.Name + "o:" + r.tag(shard) }

// Schedule is shard's schedule (Config.Schedule).
func (r *Records) Schedule(shard int) string { return r.Prefix + r.Name + "s:" + r.tag(shard) }

// workers is the client of Claim and Settle.
func (r *Records) workers() redis.Scripter {
	if r.Workers != nil {
		return r.Workers
	}
	return r.Redis
}

// Enqueue writes an item's record with fields (name, value pairs; "pb" is
// the payload Claim returns) and its stream entry. An existing record is
// left alone (created is false) unless again is set: then it is queued
// again now, for a new run of attempts (an operator's redelivery),
// whether it is settled, waiting in the schedule for a retry, or queued
// with an attempt in flight (whose settlement then decides nothing).
func (r *Records) Enqueue(ctx context.Context, shard int, tenant, item string, again bool, fields ...any) (created bool, err error) {
	c, err := r.EnqueueMany(ctx, []Item{{Shard: shard, Tenant: tenant, ID: item, Fields: fields}}, again)
	if err != nil {
		return false, err
	}
	return c[0], nil
}

// Item is one item for EnqueueMany.
type Item struct {
	// Shard, Tenant and ID name the item.
	Shard  int
	Tenant string
	ID     string
	// Fields are name, value pairs written with a new (or requeued)
	// record; "pb" is the payload Claim returns.
	Fields []any
	// FirstFields are name, value pairs written with a new record only: a
	// requeued one keeps its own (when it was first queued, say).
	FirstFields []any
}

// EnqueueMany is Enqueue for many items in one round trip (a pipeline of
// the same script; Redis Cluster splits it by node), each item atomic on
// its own. created[i] reports whether items[i] was queued. err is the
// first failure: items before it may have been queued, and enqueueing is
// idempotent, so a caller repeats the whole batch.
func (r *Records) EnqueueMany(ctx context.Context, items []Item, again bool) (created []bool, err error) {
	mode := ""
	if again {
		mode = "again:" + storage.NewID("rq") // new to this call (enqueue.lua)
	}
	calls := make([]storage.Call, len(items))
	for i, it := range items {
		if err := checkFields(it.FirstFields, it.Fields); err != nil {
			return nil, err
		}
		args := make([]any, 0, 4+len(it.FirstFields)+len(it.Fields))
		args = append(args, it.Tenant, it.ID, mode, len(it.FirstFields))
		calls[i] = storage.Call{
			Keys: []string{r.Record(it.Shard, it.Tenant, it.ID), r.Stream(it.Shard), r.Schedule(it.Shard), r.Journal(it.Shard, it.Tenant, it.ID)},
			Args: append(append(args, it.FirstFields...), it.Fields...),
		}
	}
	cmds, err := storage.EvalAll(ctx, r.Redis, enqueueScript, calls, nil)
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	created = make([]bool, len(items))
	for i, c := range cmds {
		raw, err := c.Result()
		if err != nil {
			return nil, storage.Unavailable(err)
		}
		parts, err := strs(raw)
		if err != nil {
			return nil, err
		}
		created[i] = parts[0] != "exists"
	}
	return created, nil
}

// Claim is an item taken by Claim.
type Claim struct {
	// Kind is "ok" (the caller holds the lease and must attempt), "busy"
	// (another holder's lease lives; the entry stays pending) or "stale"
	// (nothing to do; the entry was acknowledged).
	Kind string
	// Attempts are the attempts made so far, RunAttempts those since the
	// item was last queued by Enqueue.
	Attempts, RunAttempts int
	// Payload is the record's "pb".
	Payload []byte
}

// Claim takes the lease of the item e carries for ttl, with token.
func (r *Records) Claim(ctx context.Context, e Entry, token string, ttl time.Duration) (Claim, error) {
	raw, err := claimScript.Run(ctx, r.workers(),
		[]string{r.Record(e.Shard, e.Tenant, e.Item), r.Stream(e.Shard)},
		e.StreamID, token, ttl.Milliseconds(), r.Group).Result()
	if err != nil {
		return Claim{}, storage.Unavailable(err)
	}
	parts, err := strs(raw)
	if err != nil {
		return Claim{}, err
	}
	c := Claim{Kind: parts[0]}
	if c.Kind == "ok" && len(parts) >= 4 {
		c.Attempts, _ = strconv.Atoi(parts[1])
		c.RunAttempts, _ = strconv.Atoi(parts[2])
		c.Payload = []byte(parts[3])
	}
	return c, nil
}

// Settlement is the outcome of one attempt.
type Settlement struct {
	// Outcome is Done, Retry, Dead, Drop or Defer.
	Outcome string
	// Backoff is the wait before the next attempt (Retry, Defer).
	Backoff time.Duration
	// Journal, when not empty, is appended to the item's journal.
	Journal []byte
	// Fields are name, value pairs written to the record.
	Fields []any
}

// Settle records s for the item e carries, acknowledges e and releases the
// lease held with token. It returns the outcome applied, or "skip" when the
// item had moved on, or "gone".
func (r *Records) Settle(ctx context.Context, e Entry, token string, s Settlement) (string, error) {
	if err := checkFields(s.Fields); err != nil {
		return "", err
	}
	if token == "" {
		return "", errors.New("outbox: Settle needs the lease token")
	}
	jmax := r.JournalMax
	if jmax <= 0 {
		jmax = 100
	}
	ret := r.Retention
	if ret <= 0 {
		ret = 7 * 24 * time.Hour
	}
	args := append([]any{s.Outcome, e.StreamID, token, r.Group, s.Backoff.Milliseconds(), SchedMember(e.Tenant, e.Item),
		s.Journal, jmax, ret.Milliseconds()}, s.Fields...)
	raw, err := settleScript.Run(ctx, r.workers(), []string{
		r.Record(e.Shard, e.Tenant, e.Item), r.Stream(e.Shard), r.Schedule(e.Shard),
		r.Journal(e.Shard, e.Tenant, e.Item),
	}, args...).Result()
	if err != nil {
		return "", storage.Unavailable(err)
	}
	parts, err := strs(raw)
	if err != nil {
		return "", err
	}
	return parts[0], nil
}

// MaxFields bounds the name, value pairs of an Item or a Settlement. The
// scripts write a record's fields with one HSET, and Lua passes at most a
// few thousand values to one call: a larger set would fail half way
// through a script, after its stream writes.
const MaxFields = 64

// checkFields refuses fields the scripts could not write whole.
func checkFields(sets ...[]any) error {
	n := 0
	for _, fields := range sets {
		if len(fields)%2 != 0 {
			return fmt.Errorf("outbox: %d field arguments: want name, value pairs", len(fields))
		}
		n += len(fields)
	}
	if n > 2*MaxFields {
		return fmt.Errorf("outbox: %d field arguments: at most %d pairs", n, MaxFields)
	}
	return nil
}

// strs reads a script's array-of-strings answer.
func strs(raw any) ([]string, error) {
	arr, ok := raw.([]any)
	if !ok || len(arr) == 0 {
		return nil, fmt.Errorf("outbox: unexpected script answer %T", raw)
	}
	out := make([]string, len(arr))
	for i, v := range arr {
		switch x := v.(type) {
		case string:
			out[i] = x
		case int64:
			out[i] = strconv.FormatInt(x, 10)
		case nil:
		default:
			return nil, fmt.Errorf("outbox: unexpected script answer element %T", v)
		}
	}
	return out, nil
}

package submission

import (
	"cmp"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// group is the consumer group every replica's workers read the outbox with.
const group = "delivery"

var (
	//go:embed lua/accept.lua
	acceptLua string
	//go:embed lua/claim.lua
	claimLua string
	//go:embed lua/finish.lua
	finishLua string
	//go:embed lua/requeue.lua
	requeueLua string

	acceptScript  = redis.NewScript(acceptLua)
	claimScript   = redis.NewScript(claimLua)
	finishScript  = redis.NewScript(finishLua)
	requeueScript = redis.NewScript(requeueLua)
)

// Record states as stored (the SubmissionState numbers).
const (
	stQueued    = "1"
	stDelivered = "2"
	stDead      = "3"
)

// store is the Redis layout of the outbox.
//
// A submission's keys, and its shard's part of its pool's keys, carry the
// hash tag of its shard, {sub:N} (layout.go says which shard), so one Lua
// script changes them atomically with the shard's stream:
//
//	<prefix>sub:{sub:N}:<tenant>:<submission id>    record (hash)
//	<prefix>idem:{sub:N}:<tenant>:<pool>:<retry_id> idempotency key -> submission id (in the
//	                                                legacy layout's shard, or a copy of its claim)
//	<prefix>arb:{sub:N}:<instance>:<tenant>:<pool>:<retry_id>
//	                                                a layout instance's claim, "fwd:<shard>"
//	<prefix>tot:{sub:N}:<tenant>:<pool>             the shard's part of the pool's totals
//	                                                (hash: delivered, queued, dead, rd, rq)
//	<prefix>idx:{sub:N}:<tenant>:<pool>             the pool's submissions in the shard (zset by id)
//	<prefix>dead:{sub:N}:<tenant>:<pool>            the pool's dead letters in the shard
//	<prefix>outbox:{sub:N}                          the shard's outbox stream
//	<prefix>sched:{sub:N}                           the shard's retry schedule (zset)
//	<prefix>lease:{sub:N}:<submission id>           delivery lease
//	<prefix>asub:{sub:N}:<tenant>:<assignment>      the assignment's submissions in the shard (zset by id)
//	<prefix>tpay:{sub:N}:<tenant>:<user>            the Toloker's pay counters in the shard
//	                                                (hash: delivered, dead, rd), TTL PayRetention
//	<prefix>pools:{sub:N}                           the shard's pools with submissions
//	                                                (set of tenant TAB pool), walked by expire
//
// The record hash holds pb (the Submission's request part as protobuf), st
// (state), att (attempts), amt (reward in units of 1e-8 USD), tp (Toloka pool
// id), cred (credential id), fp (request fingerprint), eid (current stream
// entry, "" when none), err (TolokaError protobuf), fl (flags), dt, lat and
// nat (deliver, last attempt and next attempt times in unix ms), and arb
// (the claim keys its submit wrote or followed, layout.go). The layouts in
// use are in <prefix>sublayout (layout.go).
type store struct {
	rdb    redis.UniversalClient
	prefix string
	// payRetention is the TTL of a Toloker's pay counters, renewed by
	// every change.
	payRetention time.Duration
	// batch groups concurrent accepts into pipelines (runAccepts).
	batch *storage.GroupCommit[*acceptCall]
}

// newStore returns the outbox's store over rdb.
func newStore(rdb redis.UniversalClient, prefix string, payRetention time.Duration) *store {
	return &store{rdb: rdb, prefix: prefix, payRetention: payRetention,
		batch: storage.NewGroupCommit(func(batch []*acceptCall) { runAccepts(rdb, batch) })}
}

func tag(shard int) string { return "{sub:" + strconv.Itoa(shard) + "}" }

func (s *store) recordKey(shard int, tenantID, id string) string {
	return s.recordPrefix(shard) + tenantID + ":" + id
}
func (s *store) recordPrefix(shard int) string { return s.prefix + "sub:" + tag(shard) + ":" }
func (s *store) idemKey(shard int, tenantID, poolID, retryID string) string {
	return s.prefix + "idem:" + tag(shard) + ":" + tenantID + ":" + poolID + ":" + retryID
}

// claimKey is a layout instance's claim of a retry_id in a shard
// (layout.go): "fwd:<shard>", the shard the retry_id belongs to.
func (s *store) claimKey(shard int, instance, tenantID, poolID, retryID string) string {
	return s.prefix + "arb:" + tag(shard) + ":" + instance + ":" + tenantID + ":" + poolID + ":" + retryID
}

// claimEntryKey is the key of an entry of placement.claims ("" for a
// malformed one).
func (s *store) claimEntryKey(entry, tenantID, poolID, retryID string) string {
	if len(entry) < 2 {
		return ""
	}
	shardText, instance, _ := strings.Cut(entry[1:], "@")
	shard, err := strconv.Atoi(shardText)
	switch {
	case err != nil || shard < 0 || shard >= MaxShards:
		return ""
	case entry[0] == 'c' && instance != "":
		return s.claimKey(shard, instance, tenantID, poolID, retryID)
	case entry[0] == 'k':
		return s.idemKey(shard, tenantID, poolID, retryID)
	}
	return ""
}

func (s *store) totalsKey(shard int, tenantID, poolID string) string {
	return s.prefix + "tot:" + tag(shard) + ":" + tenantID + ":" + poolID
}
func (s *store) indexKey(shard int, tenantID, poolID string) string {
	return s.prefix + "idx:" + tag(shard) + ":" + tenantID + ":" + poolID
}

// parseIndexKey reads a pool index's key (indexKey), ok false for another.
func (s *store) parseIndexKey(key string) (shard int, tenantID, poolID string, ok bool) {
	rest, ok := strings.CutPrefix(key, s.prefix+"idx:{sub:")
	if !ok {
		return 0, "", "", false
	}
	n, rest, ok := strings.Cut(rest, "}:")
	shard, err := strconv.Atoi(n)
	if !ok || err != nil || shard < 0 || shard >= MaxShards {
		return 0, "", "", false
	}
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 || i == len(rest)-1 {
		return 0, "", "", false
	}
	return shard, rest[:i], rest[i+1:], true
}

func (s *store) deadKey(shard int, tenantID, poolID string) string {
	return s.prefix + "dead:" + tag(shard) + ":" + tenantID + ":" + poolID
}
func (s *store) streamKey(shard int) string { return s.prefix + "outbox:" + tag(shard) }

// assignmentKey is the index of an assignment's submissions in a shard.
func (s *store) assignmentKey(shard int, tenantID, assignmentID string) string {
	return s.prefix + "asub:" + tag(shard) + ":" + tenantID + ":" + assignmentID
}

// payKey holds a Toloker's pay counters in one shard: the finish script
// changes them with the submission's state, so each submission is counted
// once, exactly (see lua/finish.lua).
func (s *store) payKey(shard int, tenantID, userID string) string {
	return s.prefix + "tpay:" + tag(shard) + ":" + tenantID + ":" + userID
}

// sessionPendingKey is the set of a session's submissions not yet settled
// (QUEUED). A close_session submit waits until it is the only one left of
// its session's and of its Toloker's in the pool (tolokerPendingKey), so
// Toloka never sees an assignment closed before its earlier work is paid.
func (s *store) sessionPendingKey(shard int, tenantID, sessionID string) string {
	return s.prefix + "spend:" + tag(shard) + ":" + tenantID + ":" + sessionID
}

// tolokerPendingKey is the set of a Toloker's submissions in a pool not yet
// settled: every submit's, with a session or without (the side door), so
// a close_session waits for all of them however the earlier ones came.
// Toloka closes the Toloker's assignment on close_session either way, and
// refuses what reaches it after, for good.
func (s *store) tolokerPendingKey(shard int, tenantID, poolID, userID string) string {
	return s.prefix + "spend:" + tag(shard) + ":" + tenantID + ":toloker/" + poolID + "/" + userID
}

// othersPending reports whether submissions other than id are still
// queued in any of the pending sets named (made with sessionPendingKey or
// tolokerPendingKey for each shard), that the close_session id must wait
// for: every submit that does not close the session, and the closes made
// before id (ids sort by creation time). So of two closes queued at once,
// the older goes first: waiting for each other, neither ever would. A
// member whose record is no longer QUEUED does not count: a replica from
// before the Toloker's set existed settles without taking its submissions
// off it.
func (s *store) othersPending(ctx context.Context, shards int, tenantID, id string, sets func(shard int) []string) (bool, error) {
	type member struct {
		shard int
		id    string
	}
	var cmds []*redis.StringSliceCmd
	var shardOf []int
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range shards {
			for _, key := range sets(shard) {
				cmds = append(cmds, p.SMembers(ctx, key))
				shardOf = append(shardOf, shard)
			}
		}
		return nil
	}); err != nil {
		return false, storage.Unavailable(err)
	}
	var others []member
	seen := map[member]bool{}
	for i, c := range cmds {
		for _, other := range c.Val() {
			if m := (member{shardOf[i], other}); other != id && !seen[m] {
				seen[m] = true
				others = append(others, m)
			}
		}
	}
	if len(others) == 0 {
		return false, nil
	}
	reads := make([]*redis.SliceCmd, len(others))
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range others {
			reads[i] = p.HMGet(ctx, s.recordKey(m.shard, tenantID, m.id), "st", "pb")
		}
		return nil
	})
	for i, r := range reads {
		vals, err := r.Result()
		if err != nil {
			return false, storage.Unavailable(err)
		}
		if st, _ := vals[0].(string); st != stQueued {
			continue // settled, or gone (settled long ago)
		}
		pb, _ := vals[1].(string)
		sub := &crowdgatev1.Submission{}
		if err := proto.Unmarshal([]byte(pb), sub); err != nil || !sub.GetCloseSession() {
			return true, nil
		}
		if madeBefore(others[i].id, id) {
			return true, nil // an earlier close
		}
	}
	return false, nil
}
func (s *store) schedKey(shard int) string { return s.prefix + "sched:" + tag(shard) }

// unpaidKey is the shard's set of submissions waiting to be paid after a
// failed attempt (zset of schedMember, score = since when, unix ms: its
// creation, or an operator's retry), written by the finish and requeue
// scripts with the state; OldestUnpaid reads its head. A submit paid at its
// first attempt never joins it: the accept writes nothing more for it.
func (s *store) unpaidKey(shard int) string { return s.prefix + "unpaid:" + tag(shard) }

// poolsKey is the set of the shard's pools that have submissions: what the
// retention sweep (expire) walks.
func (s *store) poolsKey(shard int) string { return s.prefix + "pools:" + tag(shard) }

// poolMember is a pool's member of its shard's poolsKey set.
func poolMember(tenantID, poolID string) string { return tenantID + "\t" + poolID }

// intentKey is the shard's stream of event intents (events.Relay copies
// them to the tenants' logs).
func (s *store) intentKey(shard int) string { return s.prefix + "evq:" + tag(shard) }
func (s *store) leaseKey(shard int, id string) string {
	return s.prefix + "lease:" + tag(shard) + ":" + id
}

// schedMember is a submission's member in its shard's retry schedule.
func schedMember(tenantID, id string) string { return tenantID + "\t" + id }

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// idTimeLen is the length of the time-and-random part of an id.
const idTimeLen = 26

// newID returns a submission id in shard: "sub_" + base32 of 8 bytes of the
// time in nanoseconds and 8 random bytes (so ids of one pool sort by
// creation time) + "_" + the shard.
func newID(now time.Time, shard int) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	if _, err := rand.Read(b[8:]); err != nil {
		panic("submission: crypto/rand failed: " + err.Error())
	}
	return "sub_" + idEncoding.EncodeToString(b[:]) + "_" + strconv.Itoa(shard)
}

// idBound is the smallest id (without the shard suffix) made at t or later.
func idBound(t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	return "sub_" + idEncoding.EncodeToString(b[:])
}

// madeBefore reports whether submission id a was made before id b: ids
// begin with their creation time (then random bytes, so no two are
// equal).
func madeBefore(a, b string) bool {
	body := func(id string) string {
		rest, _ := strings.CutPrefix(id, "sub_")
		return rest[:min(idTimeLen, len(rest))]
	}
	return body(a) < body(b)
}

// parseID returns the shard of a well-formed id.
func parseID(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, "sub_")
	if !ok || len(rest) < idTimeLen+2 || rest[idTimeLen] != '_' {
		return 0, false
	}
	for i := 0; i < idTimeLen; i++ {
		if strings.IndexByte("0123456789abcdefghjkmnpqrstvwxyz", rest[i]) < 0 {
			return 0, false
		}
	}
	n, err := strconv.Atoi(rest[idTimeLen+1:])
	if err != nil || n < 0 || n >= MaxShards || strconv.Itoa(n) != rest[idTimeLen+1:] {
		return 0, false
	}
	return n, true
}

// idTime is the creation time encoded in a well-formed id.
func idTime(id string) time.Time {
	b, err := idEncoding.DecodeString(id[4 : 4+idTimeLen])
	if err != nil || len(b) < 8 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8])))
}

// acceptArgs is what accept writes.
type acceptArgs struct {
	shard                      int
	tenantID, poolID, id       string
	sessionID, assignmentID    string // sessionID: named, or the live session of a side-door submit
	userID                     string
	retryID                    string
	useIdem                    bool
	reject                     string
	body                       []byte
	units                      int64
	tolokaPoolID, credentialID string
	fingerprint                string
	leaseToken                 string
	leaseTTL                   time.Duration
	// claims are the keys holding claims of the retry_id this submit
	// wrote or followed (placement.claims); check is the arbiter's claim
	// key in this shard for accept.lua to read ("" for none).
	claims         []string
	check          string
	minReplicas    int
	replicaTimeout time.Duration
}

// acceptResult is accept's answer.
type acceptResult struct {
	kind    string // new, replay, reject, forward
	id      string // the new or the earlier submission id
	shard   int    // forward: the shard the retry_id belongs to
	entryID string // stream entry of a new submission
	reason  string // rejection
	// replicas is how many replicas acknowledged the write (with
	// minReplicas > 0), -1 when not asked.
	replicas int64
}

// accept runs the accept script. Concurrent accepts are sent together in
// one pipeline (group commit): one round trip and one pair of syscalls for
// many submits. When a.minReplicas > 0 the pipeline ends with WAIT on the
// same connection, so the writes are on that many replicas.
func (s *store) accept(ctx context.Context, a acceptArgs) (acceptResult, error) {
	useIdem := "0"
	if a.useIdem {
		useIdem = "1"
	}
	c := &acceptCall{
		keys: []string{
			s.idemKey(a.shard, a.tenantID, a.poolID, a.retryID),
			s.recordKey(a.shard, a.tenantID, a.id),
			s.totalsKey(a.shard, a.tenantID, a.poolID),
			s.indexKey(a.shard, a.tenantID, a.poolID),
			s.streamKey(a.shard),
			s.leaseKey(a.shard, a.id),
			s.sessionPendingKey(a.shard, a.tenantID, a.sessionID),
			s.assignmentKey(a.shard, a.tenantID, a.assignmentID),
			s.poolsKey(a.shard),
			cmp.Or(a.check, s.idemKey(a.shard, a.tenantID, a.poolID, a.retryID)), // unused unless ARGV[17]
			s.tolokerPendingKey(a.shard, a.tenantID, a.poolID, a.userID),
		},
		args: []any{useIdem, a.reject, a.id, a.tenantID, a.body, a.units, a.tolokaPoolID, a.credentialID,
			a.fingerprint, a.leaseToken, a.leaseTTL.Milliseconds(), bit(a.sessionID != ""), bit(a.assignmentID != ""),
			poolMember(a.tenantID, a.poolID), strings.Join(a.claims, ","), a.shard, bit(a.check != "")},
		minReplicas: a.minReplicas, replicaTimeout: a.replicaTimeout,
	}
	if _, cluster := s.rdb.(*redis.ClusterClient); cluster && a.minReplicas > 0 {
		// WAIT must go to the node that took the write: one at a time.
		c.raw, c.replicas, c.err = s.evalAndWait(ctx, c.keys, c.args, a.minReplicas, a.replicaTimeout)
	} else {
		if err := s.batch.Do(ctx, c); err != nil {
			return acceptResult{}, storage.Unavailable(err)
		}
	}
	if c.err != nil {
		return acceptResult{}, storage.Unavailable(c.err)
	}
	parts, err := strings2(c.raw)
	if err != nil {
		return acceptResult{}, err
	}
	res := acceptResult{kind: parts[0], replicas: c.replicas}
	switch res.kind {
	case "new":
		res.id, res.entryID = parts[1], parts[2]
	case "replay":
		res.id = parts[1]
	case "reject":
		res.reason = parts[1]
	case "forward":
		n, ok := parseForward(forwardPrefix + parts[1])
		if !ok {
			return acceptResult{}, fmt.Errorf("submission: idempotency key holds a claim of shard %q", parts[1])
		}
		res.shard = n
	}
	return res, nil
}

// acceptCall is one accept waiting in the batch (store.batch).
type acceptCall struct {
	keys           []string
	args           []any
	minReplicas    int
	replicaTimeout time.Duration

	raw      any
	replicas int64
	err      error
}

// runAccepts sends a batch of accepts in one pipeline (storage.EvalAll:
// EVALSHA, and the script's text for calls Redis answered NOSCRIPT), ended
// by a WAIT when a call asks for replicas.
func runAccepts(rdb redis.UniversalClient, batch []*acceptCall) {
	// The pipeline runs on its own: a caller that gave up must not cut
	// the others' writes short.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	calls := make([]storage.Call, len(batch))
	minReplicas, timeout := 0, time.Duration(0)
	for i, c := range batch {
		calls[i] = storage.Call{Keys: c.keys, Args: c.args}
		minReplicas, timeout = max(minReplicas, c.minReplicas), max(timeout, c.replicaTimeout)
	}
	var waits []*redis.Cmd
	var after func(redis.Pipeliner)
	if minReplicas > 0 {
		after = func(p redis.Pipeliner) { waits = append(waits, p.Do(ctx, "WAIT", minReplicas, timeout.Milliseconds())) }
	}
	cmds, perr := storage.EvalAll(ctx, rdb, acceptScript, calls, after)
	replicas := replicasAcknowledged(waits)
	for i, c := range batch {
		err := cmds[i].Err()
		if err == nil && perr != nil && cmds[i].Val() == nil {
			err = perr
		}
		c.raw, c.err, c.replicas = cmds[i].Val(), err, replicas
	}
}

// replicasAcknowledged is the fewest replicas any of the WAITs counted
// (each pipeline sent ends with one), or -1 when none was sent.
func replicasAcknowledged(waits []*redis.Cmd) int64 {
	n := int64(-1)
	for _, w := range waits {
		got, _ := w.Int64()
		if n < 0 || got < n {
			n = got
		}
	}
	return n
}

// evalAndWait runs the accept script and WAIT numReplicas in one pipeline,
// on one connection of the node that owns the keys: WAIT only counts the
// writes of its own connection.
func (s *store) evalAndWait(ctx context.Context, keys []string, args []any, n int, timeout time.Duration) (any, int64, error) {
	var node redis.Cmdable = s.rdb
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		c, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return nil, 0, err
		}
		node = c
	}
	var waits []*redis.Cmd
	cmds, err := storage.EvalAll(ctx, node, acceptScript, []storage.Call{{Keys: keys, Args: args}},
		func(p redis.Pipeliner) { waits = append(waits, p.Do(ctx, "WAIT", n, timeout.Milliseconds())) })
	if cmds[0].Err() != nil {
		return nil, 0, cmds[0].Err()
	}
	if err != nil {
		return nil, 0, err
	}
	return cmds[0].Val(), replicasAcknowledged(waits), nil
}

// record is a stored submission.
type record struct {
	sub          *crowdgatev1.Submission
	tolokaPoolID string
	credentialID string
	units        int64
	fingerprint  string
	entryID      string
	// claims are the keys holding claims of this submission's retry_id
	// (placement.claims, comma-separated, "" when none; layout.go): the
	// retention sweep deletes them with the submission.
	claims string
}

// recordFields are the hash fields load reads, in order.
var recordFields = []string{"pb", "st", "att", "err", "fl", "dt", "lat", "nat", "tp", "cred", "amt", "fp", "eid", "arb"}

// get reads one record; a missing one is NotFound.
func (s *store) get(ctx context.Context, shard int, tenantID, id string) (*record, error) {
	vals, err := s.rdb.HMGet(ctx, s.recordKey(shard, tenantID, id), recordFields...).Result()
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	r, err := decodeRecord(vals)
	if err != nil {
		return nil, fmt.Errorf("decode submission %s: %w", id, err)
	}
	if r == nil {
		return nil, &serviceerror.NotFound{Resource: "submission", ID: id}
	}
	return r, nil
}

// getMany reads records in one round trip; missing ones are left out.
func (s *store) getMany(ctx context.Context, tenantID string, ids []string) ([]*record, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, len(ids))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			// Every id names its shard; one that does not (never
			// written by this package) reads as a missing record.
			shard, _ := parseID(id)
			cmds[i] = p.HMGet(ctx, s.recordKey(shard, tenantID, id), recordFields...)
		}
		return nil
	})
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	out := make([]*record, 0, len(ids))
	for i, c := range cmds {
		r, err := decodeRecord(c.Val())
		if err != nil {
			return nil, fmt.Errorf("decode submission %s: %w", ids[i], err)
		}
		if r != nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// decodeRecord builds a record from HMGET values in recordFields order; nil
// when the record does not exist.
func decodeRecord(vals []any) (*record, error) {
	str := func(i int) string {
		s, _ := vals[i].(string)
		return s
	}
	if vals[0] == nil {
		return nil, nil
	}
	sub := new(crowdgatev1.Submission)
	if err := proto.Unmarshal([]byte(str(0)), sub); err != nil {
		return nil, err
	}
	st, _ := strconv.Atoi(str(1))
	sub.State = crowdgatev1.SubmissionState(st)
	att, _ := strconv.Atoi(str(2))
	sub.Attempts = int32(att)
	if e := str(3); e != "" {
		te := new(crowdgatev1.TolokaError)
		if err := proto.Unmarshal([]byte(e), te); err != nil {
			return nil, err
		}
		sub.LastError = te
	}
	if fl := str(4); len(fl) == 3 {
		sub.Flags = &crowdgatev1.TolokaFlags{
			SpeedQualityBalanceMatch: fl[0] == '1',
			RestrictionMatch:         fl[1] == '1',
			FilterMatch:              fl[2] == '1',
		}
	}
	sub.DeliverTime = msTime(str(5))
	sub.LastAttemptTime = msTime(str(6))
	if sub.State == crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED {
		sub.NextAttemptTime = msTime(str(7))
	}
	units, _ := strconv.ParseInt(str(10), 10, 64)
	return &record{sub: sub, tolokaPoolID: str(8), credentialID: str(9), units: units, fingerprint: str(11), entryID: str(12), claims: str(13)}, nil
}

func msTime(s string) *timestamppb.Timestamp {
	if s == "" {
		return nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return nil
	}
	return timestamppb.New(time.UnixMilli(ms))
}

// claimResult is claim's answer.
type claimResult struct {
	kind         string // ok, stale, busy
	sub          *crowdgatev1.Submission
	attempts     int
	requeuedAt   int // attempts made before an operator's last retry
	tolokaPoolID string
	credentialID string
}

// claim takes the lease of the submission entry carries.
func (s *store) claim(ctx context.Context, e entry, token string, ttl time.Duration) (claimResult, error) {
	raw, err := claimScript.Run(ctx, s.rdb,
		[]string{s.recordKey(e.shard, e.tenantID, e.id), s.leaseKey(e.shard, e.id), s.streamKey(e.shard)},
		e.entryID, token, ttl.Milliseconds(), group).Result()
	if err != nil {
		return claimResult{}, storage.Unavailable(err)
	}
	parts, err := strings2(raw)
	if err != nil {
		return claimResult{}, err
	}
	res := claimResult{kind: parts[0]}
	if res.kind != "ok" {
		return res, nil
	}
	res.sub = new(crowdgatev1.Submission)
	if err := proto.Unmarshal([]byte(parts[1]), res.sub); err != nil {
		return claimResult{}, fmt.Errorf("decode submission %s: %w", e.id, err)
	}
	res.attempts, _ = strconv.Atoi(parts[2])
	res.tolokaPoolID, res.credentialID = parts[3], parts[4]
	if len(parts) > 5 {
		res.requeuedAt, _ = strconv.Atoi(parts[5])
	}
	return res, nil
}

// outcome is how one delivery attempt ended.
type outcome struct {
	kind    string // delivered, retry, dead
	flags   *crowdgatev1.TolokaFlags
	err     *crowdgatev1.TolokaError
	backoff time.Duration
}

// finish records an attempt's outcome for sub, which had made attempts
// before this one; it returns what the script applied (delivered, retry,
// dead, skip, gone). A delivery or a death writes its event's intent in
// the same step.
func (s *store) finish(ctx context.Context, e entry, sub *crowdgatev1.Submission, attempts int, token string, at time.Time, o outcome) (string, error) {
	var errBytes []byte
	if o.err != nil {
		var err error
		if errBytes, err = proto.Marshal(o.err); err != nil {
			return "", err
		}
	}
	fl := ""
	if f := o.flags; f != nil {
		fl = bit(f.SpeedQualityBalanceMatch) + bit(f.RestrictionMatch) + bit(f.FilterMatch)
	}
	delivered, dead, err := outcomeEvents(e.tenantID, sub, attempts+1, at, o)
	if err != nil {
		return "", err
	}
	raw, err := finishScript.Run(ctx, s.rdb, []string{
		s.recordKey(e.shard, e.tenantID, e.id),
		s.totalsKey(e.shard, e.tenantID, sub.GetPoolId()),
		s.deadKey(e.shard, e.tenantID, sub.GetPoolId()),
		s.streamKey(e.shard),
		s.schedKey(e.shard),
		s.leaseKey(e.shard, e.id),
		s.sessionPendingKey(e.shard, e.tenantID, sub.GetSessionId()),
		s.payKey(e.shard, e.tenantID, sub.GetUserId()),
		s.intentKey(e.shard),
		s.tolokerPendingKey(e.shard, e.tenantID, sub.GetPoolId(), sub.GetUserId()),
		s.unpaidKey(e.shard),
	}, o.kind, e.entryID, token, group, at.UnixMilli(), errBytes, fl, o.backoff.Milliseconds(),
		schedMember(e.tenantID, e.id), e.id, s.payRetention.Milliseconds(), delivered, dead, idTime(e.id).UnixMilli()).Result()
	if err != nil {
		return "", storage.Unavailable(err)
	}
	parts, err := strings2(raw)
	if err != nil {
		return "", err
	}
	return parts[0], nil
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// requeue moves a DEAD submission back to the outbox, with its
// submission.retried event's intent.
func (s *store) requeue(ctx context.Context, shard int, sub *crowdgatev1.Submission, now time.Time) (string, error) {
	tenantID, id := sub.GetTenantId(), sub.GetSubmissionId()
	retried, err := retriedEvent(sub, now)
	if err != nil {
		return "", err
	}
	raw, err := requeueScript.Run(ctx, s.rdb, []string{
		s.recordKey(shard, tenantID, id),
		s.totalsKey(shard, tenantID, sub.GetPoolId()),
		s.deadKey(shard, tenantID, sub.GetPoolId()),
		s.streamKey(shard),
		s.payKey(shard, tenantID, sub.GetUserId()),
		s.intentKey(shard),
		s.tolokerPendingKey(shard, tenantID, sub.GetPoolId(), sub.GetUserId()),
		s.sessionPendingKey(shard, tenantID, sub.GetSessionId()),
		s.unpaidKey(shard),
	}, tenantID, id, now.UnixMilli(), retried, randomHex(8), bit(sub.GetSessionId() != "")).Result()
	if err != nil {
		return "", storage.Unavailable(err)
	}
	parts, err := strings2(raw)
	if err != nil {
		return "", err
	}
	return parts[0], nil
}

// totals are a pool's counters as stored.
type totals struct {
	received, delivered, queued, dead int64
	rewardDelivered, rewardQueued     int64 // units
}

// totals adds the parts of a pool's totals in shards shards.
func (s *store) totals(ctx context.Context, shards int, tenantID, poolID string) (totals, error) {
	cmds := make([]*redis.SliceCmd, shards)
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range cmds {
			cmds[shard] = p.HMGet(ctx, s.totalsKey(shard, tenantID, poolID), "delivered", "queued", "dead", "rd", "rq")
		}
		return nil
	}); err != nil {
		return totals{}, storage.Unavailable(err)
	}
	n := make([]int64, 5)
	for _, c := range cmds {
		for i, v := range c.Val() {
			if str, ok := v.(string); ok {
				x, _ := strconv.ParseInt(str, 10, 64)
				n[i] += x
			}
		}
	}
	// Every submission is in exactly one state, so the states add up to
	// what was received.
	return totals{received: n[0] + n[1] + n[2], delivered: n[0], queued: n[1], dead: n[2], rewardDelivered: n[3], rewardQueued: n[4]}, nil
}

// strings2 reads a script's array-of-strings answer.
func strings2(raw any) ([]string, error) {
	arr, ok := raw.([]any)
	if !ok || len(arr) == 0 {
		return nil, fmt.Errorf("submission: unexpected script answer %T", raw)
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
			return nil, fmt.Errorf("submission: unexpected script answer element %T", v)
		}
	}
	return out, nil
}

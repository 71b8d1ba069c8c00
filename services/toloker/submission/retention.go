package submission

// Retention: delivered submissions do not stay in Redis for ever, and no
// retry_id is paid twice because of it.
//
// A DELIVERED submission is deleted once a retention R has passed both since
// it was delivered and since its work was done (the earlier of start_time
// and end_time, when given): its record, its entries in the pool and
// assignment indexes, and its idempotency key, all in one script
// (lua/expire.lua), so a reader never finds a key without its record.
// Queued and DEAD submissions are never deleted: both are unpaid work (a
// DEAD one waits for an operator's RetrySubmission and expires a retention
// after it is delivered). Pool totals and the Tolokers' pay counters are
// counters, not sums over records, so they stay exact.
//
// Replicas may run with different retentions (a rolling change). Each one
// says in Redis which retention it uses (the hash <prefix>subret: retention
// → when a replica last said so) at least every tenth of its retention (at
// most every minute: each sweep, and before a submit when its copy is older
// than that), and forgets a retention nobody has said for the longest one.
// Deletion uses the longest retention in use and the replay window the
// shortest. A replica's copy is at most that tenth old, and its own entry
// can only be forgotten after the longest retention without saying it, so
// while it accepts submits every deleting replica counts its retention in
// the longest, and it counts every deleting replica's in its shortest once
// its copy is fresh.

// Why an expired retry_id is never paid again. A submit with a retry_id is
// accepted only if its work time w is inside the replay window
// W = R_min/2: w is the earlier of start_time and end_time, or, when the
// request gives neither, the session's start (for a submit by session_id);
// a submit by pool_id and user_id with a retry_id must give start_time or
// end_time. A replay is the same request (the same times and session: a
// different end_time is a different submit, refused while the key lives),
// so it has the same w. The key lives at least until w + R_del ≤ now on the
// deleting replica's clock (R_del ≥ R_min), and a session's start is before
// the delivery. So a replay that finds no key comes when its work is at
// least R_min − δ old, δ the clock skew between the two replicas, and the
// window (R_min/2) refuses it unless δ > R_min/2 (30 s at the 1 m minimum,
// 15 days at the default): INVALID_ARGUMENT naming the field. A replay that
// finds its key is answered from it whatever its age (the window refuses
// only when the key is gone: see accept.lua). A platform that makes a new
// end_time on each resend is refused while the key lives (another submit
// under the same retry_id), and would be paid again after it: that is a
// retry_id reused for new work, which the README warns of.
//
// A record whose work time is far ahead (before this version no such bound
// existed, and a submit without a retry_id has none) is kept until its work
// time is a retention old.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

var (
	//go:embed lua/expire.lua
	expireLua    string
	expireScript = redis.NewScript(expireLua)

	// claimKeyScript deletes (ARGV[1] "") or renews for ARGV[1] ms a claim
	// (KEYS[1], layout.go) if the key holds one (never an idempotency
	// key's submission id).
	claimKeyScript = redis.NewScript(`local v = redis.call('GET', KEYS[1])
if not v or string.sub(v, 1, 4) ~= 'fwd:' then return 0 end
if ARGV[1] == '' then return redis.call('DEL', KEYS[1]) end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])`)
)

// expireBatch is how many index entries one expire pass reads at a time.
const expireBatch = 256

// staleWork says why a submit with a retry_id is outside the replay window
// (the field to name and the reason), or "" when it is inside; see the
// comment at the top of this file. Submits without a retry_id cannot be
// replays (each gets a new id) and are not held to the window.
func (s *Service) staleWork(ctx context.Context, in *submitInput, sess *crowdgatev1.Session, hasRetryID bool, now time.Time) (field, reason string, err error) {
	if !hasRetryID {
		return "", "", nil
	}
	type known struct {
		field, what string
		t           time.Time
	}
	var times []known
	if in.start != nil {
		times = append(times, known{"start_time", "the work started", *in.start})
	}
	if in.end != nil {
		times = append(times, known{"end_time", "the work ended", *in.end})
	}
	if len(times) == 0 && sess != nil && sess.GetCreateTime() != nil {
		times = append(times, known{"session_id", "the session started", sess.GetCreateTime().AsTime()})
	}
	if len(times) == 0 {
		return "end_time", "is required for a submit by pool_id and user_id with a retry_id (or give start_time): " +
			"the work's time is how Crowdgate refuses a replay that comes after the retry_id's idempotency key expired", nil
	}
	shortest, _, err := s.retentions.current(ctx, now)
	if err != nil {
		return "", "", err
	}
	window, slack := shortest/2, min(time.Hour, shortest/4)
	oldest := times[0]
	for _, k := range times {
		if k.field != "session_id" && k.t.After(now.Add(slack)) {
			return k.field, fmt.Sprintf("is %s ahead of Crowdgate's clock, more than %s: a submit reports work already done",
				k.t.Sub(now).Round(time.Second), slack), nil
		}
		if k.t.Before(oldest.t) {
			oldest = k
		}
	}
	if now.Sub(oldest.t) > window {
		return oldest.field, fmt.Sprintf("%s at %s, more than the replay window (%s) ago: a retry_id is remembered for %s after its submission settles, "+
			"so a submit this old could be a replay of one already paid; it is refused",
			oldest.what, oldest.t.UTC().Format(time.RFC3339), window, shortest), nil
	}
	return "", "", nil
}

// backfillPools adds to each shard's set of pools with submissions (what
// the sweep walks) every pool that has an index there: pools whose
// submissions were all made before the accept script kept the set would
// otherwise never be swept. It runs once per Redis (a marker key records
// it; replicas that start together both add, which is harmless) and reads
// one key per pool and shard, not per submission.
func (s *Service) backfillPools(ctx context.Context) error {
	marker := s.st.prefix + "subpools:backfilled"
	if n, err := s.rdb.Exists(ctx, marker).Result(); err != nil {
		return storage.Unavailable(err)
	} else if n > 0 {
		return nil
	}
	keys, err := storage.ScanKeys(ctx, s.rdb, storage.GlobEscape(s.st.prefix)+"idx:{sub:*}:*")
	if err != nil {
		return err
	}
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			shard, tenantID, poolID, ok := s.st.parseIndexKey(k)
			if ok {
				p.SAdd(ctx, s.st.poolsKey(shard), poolMember(tenantID, poolID))
			}
		}
		return nil
	}); err != nil {
		return storage.Unavailable(err)
	}
	return storage.Unavailable(s.rdb.Set(ctx, marker, s.now().UnixMilli(), 0).Err())
}

// runExpiry deletes expired submissions every interval (a tenth of the
// retention, at most a minute) until ctx ends. Every replica runs it; the
// expire script makes each deletion once.
func (s *Service) runExpiry(ctx context.Context) {
	t := time.NewTicker(min(time.Minute, s.cfg.Retention/10))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.expire(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("submission: could not delete expired submissions; the next pass tries again", slog.String("error", err.Error()))
		}
	}
}

// expire says which retention this replica uses, then deletes, in every
// shard, the delivered submissions whose retention (the longest any live
// replica uses) has passed, and returns how many it deleted. A pool that
// fails is left for the next pass; the others go on.
func (s *Service) expire(ctx context.Context) (int, error) {
	now := s.now()
	if err := s.retentions.refresh(ctx, now); err != nil {
		return 0, err
	}
	_, longest, err := s.retentions.current(ctx, now)
	if err != nil {
		return 0, err
	}
	v, err := s.retentions.layout(ctx, now)
	if err != nil {
		return 0, err
	}
	total := 0
	var errs []error
	for shard := range v.max {
		pools, err := s.rdb.SMembers(ctx, s.st.poolsKey(shard)).Result()
		if err != nil {
			errs = append(errs, storage.Unavailable(err))
			continue
		}
		for _, m := range pools {
			tenantID, poolID, ok := strings.Cut(m, "\t")
			if !ok {
				continue
			}
			n, err := s.expirePool(ctx, shard, tenantID, poolID, now, longest)
			total += n
			if err != nil {
				errs = append(errs, fmt.Errorf("pool %s: %w", poolID, err))
			}
		}
	}
	return total, errors.Join(errs...)
}

// expirePool deletes a pool's delivered submissions whose retention has
// passed at now. Only submissions made before now − retention can have
// expired (a submission is delivered after it is made), so it reads that
// range of the pool's index (ids begin with their creation time), oldest
// first.
func (s *Service) expirePool(ctx context.Context, shard int, tenantID, poolID string, now time.Time, retention time.Duration) (int, error) {
	cutoff := now.Add(-retention)
	index := s.st.indexKey(shard, tenantID, poolID)
	lo, hi := "-", "("+idBound(cutoff)
	deleted := 0
	for {
		ids, err := s.rdb.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: lo, Max: hi, Count: expireBatch}).Result()
		if err != nil {
			return deleted, storage.Unavailable(err)
		}
		if len(ids) == 0 {
			return deleted, nil
		}
		// First the state and delivery time of each (a few bytes: kept
		// dead letters and old queued ones are read on every pass), then
		// the whole record of those delivered long enough ago.
		heads := make([]*redis.SliceCmd, len(ids))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				heads[i] = p.HMGet(ctx, s.st.recordKey(shard, tenantID, id), "st", "dt", "arb")
			}
			return nil
		}); err != nil {
			return deleted, storage.Unavailable(err)
		}
		var keys []string
		var args []any
		// add asks the script to delete id if it is still delivered at
		// delivered ("" for an index entry without a record).
		add := func(id, assignmentID, retryID, delivered string, withKey bool) {
			keys = append(keys, s.st.recordKey(shard, tenantID, id), index,
				s.st.assignmentKey(shard, tenantID, assignmentID), s.st.idemKey(shard, tenantID, poolID, retryID))
			args = append(args, id, delivered, bit(withKey))
		}
		var due, unpaid []string
		var gone []*record // deleted with a retry_id: their claims go too (layout.go)
		for i, id := range ids {
			v := heads[i].Val()
			st, _ := v[0].(string)
			dt, _ := v[1].(string)
			arb, _ := v[2].(string)
			ms, _ := strconv.ParseInt(dt, 10, 64)
			switch {
			case v[0] == nil: // deleted by another replica since the index was read
				add(id, "", "", "", false)
			case st == stDelivered && !time.UnixMilli(ms).Add(retention).After(now):
				due = append(due, id)
			case st != stDelivered && arb != "":
				unpaid = append(unpaid, id)
			}
		}
		if err := s.renewClaims(ctx, tenantID, poolID, unpaid, retention); err != nil {
			return deleted, err
		}
		recs, err := s.st.getMany(ctx, tenantID, due)
		if err != nil {
			return deleted, err
		}
		for _, r := range recs {
			sub := r.sub
			if sub.GetState() != crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED {
				continue
			}
			id := sub.GetSubmissionId()
			at := sub.GetDeliverTime().AsTime()
			withKey := sub.GetRetryId() != id
			if !expired(now, retention, at, withKey, sub.GetStartTime(), sub.GetEndTime()) {
				continue
			}
			add(id, sub.GetAssignmentId(), sub.GetRetryId(), strconv.FormatInt(at.UnixMilli(), 10), withKey)
			if withKey {
				gone = append(gone, r)
			}
		}
		if len(args) > 0 {
			n, err := expireScript.Run(ctx, s.rdb, keys, args...).Int()
			if err != nil {
				return deleted, storage.Unavailable(err)
			}
			deleted += n
			s.m.expired.Add(float64(n))
		}
		// The claims after their submissions, like their idempotency
		// keys: a replay that finds neither is past the window. A claim
		// left by a failure here expires (claimTTL).
		if err := s.keepClaims(ctx, tenantID, poolID, gone, 0); err != nil {
			return deleted, err
		}
		if len(ids) < expireBatch {
			return deleted, nil
		}
		lo = "(" + ids[len(ids)-1]
	}
}

// renewClaims keeps the claims of submissions still queued or dead (ids,
// made more than a retention ago) alive for another claimTTL: they are kept
// until delivered, however long, and a resend must still be led to them
// (layout.go).
func (s *Service) renewClaims(ctx context.Context, tenantID, poolID string, ids []string, retention time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	recs, err := s.st.getMany(ctx, tenantID, ids)
	if err != nil {
		return err
	}
	return s.keepClaims(ctx, tenantID, poolID, recs, claimTTL(retention))
}

// keepClaims deletes (ttl 0) or renews for ttl the claims recs' submits
// wrote or followed (record.claims), in one pipeline.
func (s *Service) keepClaims(ctx context.Context, tenantID, poolID string, recs []*record, ttl time.Duration) error {
	arg := ""
	if ttl > 0 {
		arg = strconv.FormatInt(ttl.Milliseconds(), 10)
	}
	var calls []storage.Call
	for _, r := range recs {
		for _, c := range strings.Split(r.claims, ",") {
			if key := s.st.claimEntryKey(c, tenantID, poolID, r.sub.GetRetryId()); key != "" {
				calls = append(calls, storage.Call{Keys: []string{key}, Args: []any{arg}})
			}
		}
	}
	if len(calls) == 0 {
		return nil
	}
	cmds, err := storage.EvalAll(ctx, s.rdb, claimKeyScript, calls, nil)
	for _, c := range cmds {
		if err == nil {
			err = c.Err()
		}
	}
	return storage.Unavailable(err)
}

// expired reports whether a submission delivered at delivered is past the
// retention at now. With a retry_id (withKey) its work must be a retention
// old too: the earlier of start and end, the time the replay window judges
// a replay by. Without one there is no key a replay could find.
func expired(now time.Time, retention time.Duration, delivered time.Time, withKey bool, start, end *timestamppb.Timestamp) bool {
	if delivered.Add(retention).After(now) {
		return false
	}
	if !withKey {
		return true
	}
	var work *time.Time
	for _, t := range []*timestamppb.Timestamp{start, end} {
		if t != nil {
			if w := t.AsTime(); work == nil || w.Before(*work) {
				work = &w
			}
		}
	}
	return work == nil || !work.Add(retention).After(now)
}

// retentions are the retentions and the layouts the replicas use, as each
// says in Redis (see the comment at the top of this file and layout.go).
type retentions struct {
	rdb redis.UniversalClient
	key string
	own time.Duration
	// layoutKey is the layouts' hash; ownLayout this replica's layout
	// (layoutName(shards), shards its shard count); streamKey names a
	// shard's outbox stream (to find data of the rule before layouts).
	layoutKey string
	ownLayout string
	shards    int
	streamKey func(shard int) string

	mu                sync.Mutex
	loadedAt          time.Time // zero until the first refresh
	shortest, longest time.Duration
	view              layoutView
	// layoutSaid is set once this replica has said its layout.
	layoutSaid bool
}

// every is how often a replica says its retention and reads the others':
// a tenth of its own, at most a minute (the sweep's interval).
func (r *retentions) every() time.Duration { return min(time.Minute, r.own/10) }

// refresh says in Redis that this replica uses its retention at now, reads
// the others', and forgets those no replica has said for longer than the
// longest retention (their replicas are gone, and what they deleted is by
// then past every window).
func (r *retentions) refresh(ctx context.Context, now time.Time) error {
	var all *redis.MapStringStringCmd
	if _, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, r.key, strconv.FormatInt(r.own.Milliseconds(), 10), now.UnixMilli())
		all = p.HGetAll(ctx, r.key)
		return nil
	}); err != nil {
		return storage.Unavailable(err)
	}
	type seen struct {
		retention time.Duration
		at        time.Time
	}
	var list []seen
	longest := r.own
	for k, v := range all.Val() {
		ms, err1 := strconv.ParseInt(k, 10, 64)
		at, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil || ms <= 0 {
			continue
		}
		list = append(list, seen{time.Duration(ms) * time.Millisecond, time.UnixMilli(at)})
		longest = max(longest, time.Duration(ms)*time.Millisecond)
	}
	shortest, keepLongest := r.own, r.own
	var stale []string
	for _, x := range list {
		if x.at.Add(longest).Before(now) {
			stale = append(stale, strconv.FormatInt(x.retention.Milliseconds(), 10))
			continue
		}
		shortest, keepLongest = min(shortest, x.retention), max(keepLongest, x.retention)
	}
	if len(stale) > 0 {
		// Another replica may have said one of these again meanwhile; it
		// says it again on its next pass, and until then this replica's
		// own window (from shortest) is no longer than before.
		_ = r.rdb.HDel(ctx, r.key, stale...).Err()
	}
	// The layouts: forgotten after the longest retention unsaid, like the
	// retentions.
	view, err := r.sayLayout(ctx, now, now.Add(-keepLongest))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.loadedAt, r.shortest, r.longest, r.view = now, shortest, keepLongest, view
	r.mu.Unlock()
	return nil
}

// layout returns the layouts in use, reading them from Redis (and saying
// this replica's) when its copy is older than every().
func (r *retentions) layout(ctx context.Context, now time.Time) (layoutView, error) {
	if _, _, err := r.current(ctx, now); err != nil {
		return layoutView{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.view, nil
}

// current returns the shortest and the longest retention in use, reading
// them from Redis (and saying this replica's) when its copy is older than
// every().
func (r *retentions) current(ctx context.Context, now time.Time) (shortest, longest time.Duration, err error) {
	r.mu.Lock()
	at := r.loadedAt
	shortest, longest = r.shortest, r.longest
	r.mu.Unlock()
	if !at.IsZero() && now.Sub(at) < r.every() && !now.Before(at) {
		return shortest, longest, nil
	}
	if err := r.refresh(ctx, now); err != nil {
		return 0, 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.shortest, r.longest, nil
}

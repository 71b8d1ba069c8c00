package submission

// Retention: settled submissions do not stay in Redis for ever, and no
// retry_id is paid twice because of it.
//
// A submission that settled (DELIVERED, or DEAD) at time s is deleted at
// s + Retention: its record, its entries in the pool index, the dead
// letters and the assignment index, and its idempotency key, all in one
// script (lua/expire.lua), so a reader never finds a key without its
// record. Queued submissions are never deleted, however old. Pool totals
// and the Tolokers' pay counters are counters, not sums over records, so
// they stay exact.
//
// Why an expired retry_id is never paid again. A submit with a retry_id is
// accepted only if its work time w is inside the replay window
// W = Retention/2, and no client-given time is more than F = FutureSlack
// (at most Retention/4) ahead of the clock, where w is the earlier of
// start_time and end_time, or, when neither is given, the session's start
// (for a submit by session_id); a submit by pool_id and user_id with a
// retry_id must give start_time or end_time. Say the first submit was
// accepted at a1 and its key deleted at s1 + Retention ≥ a1 + Retention. A replay is the same request: the same
// session, the same times (both are part of what a retry_id names: a
// different end_time is a different submit, refused while the key lives).
// While the key lives the replay is answered from it. After that it comes
// at a2 ≥ a1 + Retention, and its work time is w ≤ a1 + F (the session
// started before a1; client times were at most F ahead of a1), so
// a2 − w ≥ Retention − F ≥ 3/4 Retention > W: the window refuses it, with
// INVALID_ARGUMENT naming the field. A replay inside the window is always
// answered by its key (the refusal only applies when the key is gone: see
// accept.lua), so the window never turns a paid submit's replay into an
// error while its key lives.

import (
	"context"
	_ "embed"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

var (
	//go:embed lua/expire.lua
	expireLua    string
	expireScript = redis.NewScript(expireLua)
)

// expireBatch is how many index entries one expire pass reads at a time.
const expireBatch = 256

// staleWork says why a submit with a retry_id is outside the replay window
// (the field to name and the reason), or "" when it is inside; see the
// comment at the top of this file. Submits without a retry_id cannot be
// replays (each gets a new id) and are not held to the window.
func (s *Service) staleWork(in *submitInput, sess *crowdgatev1.Session, hasRetryID bool, now time.Time) (field, reason string) {
	if !hasRetryID {
		return "", ""
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
			"the work's time is how Crowdgate refuses a replay that comes after the retry_id's idempotency key expired"
	}
	window, slack := s.cfg.ReplayWindow(), s.cfg.FutureSlack()
	oldest := times[0]
	for _, k := range times {
		if k.field != "session_id" && k.t.After(now.Add(slack)) {
			return k.field, fmt.Sprintf("is %s ahead of Crowdgate's clock, more than %s: a submit reports work already done",
				k.t.Sub(now).Round(time.Second), slack)
		}
		if k.t.Before(oldest.t) {
			oldest = k
		}
	}
	if now.Sub(oldest.t) > window {
		return oldest.field, fmt.Sprintf("%s at %s, more than the replay window (%s) ago: a retry_id is remembered for %s after its submission settles, "+
			"so a submit this old could be a replay of one already paid; it is refused",
			oldest.what, oldest.t.UTC().Format(time.RFC3339), window, s.cfg.Retention)
	}
	return "", ""
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

// expire deletes, in every shard, the settled submissions whose retention
// has passed, and returns how many it deleted.
func (s *Service) expire(ctx context.Context) (int, error) {
	total := 0
	for shard := range Shards {
		pools, err := s.rdb.SMembers(ctx, s.st.poolsKey(shard)).Result()
		if err != nil {
			return total, storage.Unavailable(err)
		}
		for _, m := range pools {
			tenantID, poolID, ok := strings.Cut(m, "\t")
			if !ok {
				continue
			}
			n, err := s.expirePool(ctx, shard, tenantID, poolID)
			total += n
			if err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// expirePool deletes a pool's expired submissions. Only submissions made
// before now − Retention can have expired (a submission settles after it
// is made), so it reads that range of the pool's index (ids begin with
// their creation time), oldest first.
func (s *Service) expirePool(ctx context.Context, shard int, tenantID, poolID string) (int, error) {
	now := s.now()
	cutoff := now.Add(-s.cfg.Retention)
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
		cmds := make([]*redis.SliceCmd, len(ids))
		if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range ids {
				cmds[i] = p.HMGet(ctx, s.st.recordKey(shard, tenantID, id), recordFields...)
			}
			return nil
		}); err != nil {
			return deleted, storage.Unavailable(err)
		}
		var keys []string
		var args []any
		for i, id := range ids {
			r, err := decodeRecord(cmds[i].Val())
			if err != nil {
				s.log.Warn("submission: an unreadable record is kept", slog.String("submission_id", id), slog.String("error", err.Error()))
				continue
			}
			state, settled, idem := "", "", "0"
			assignmentID, retryID := "", ""
			if r != nil {
				var at time.Time
				switch r.sub.GetState() {
				case crowdgatev1.SubmissionState_SUBMISSION_STATE_DELIVERED:
					state, at = stDelivered, r.sub.GetDeliverTime().AsTime()
				case crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD:
					state, at = stDead, r.sub.GetLastAttemptTime().AsTime()
				default:
					continue // queued: kept until it settles
				}
				if at.Add(s.cfg.Retention).After(now) {
					continue
				}
				settled = strconv.FormatInt(at.UnixMilli(), 10)
				assignmentID, retryID = r.sub.GetAssignmentId(), r.sub.GetRetryId()
				if retryID != id {
					idem = "1"
				}
			}
			keys = append(keys,
				s.st.recordKey(shard, tenantID, id), index, s.st.deadKey(shard, tenantID, poolID),
				s.st.assignmentKey(shard, tenantID, assignmentID), s.st.idemKey(shard, tenantID, poolID, retryID))
			args = append(args, id, state, settled, idem)
		}
		if len(args) > 0 {
			n, err := expireScript.Run(ctx, s.rdb, keys, args...).Int()
			if err != nil {
				return deleted, storage.Unavailable(err)
			}
			deleted += n
			s.m.expired.Add(float64(n))
		}
		if len(ids) < expireBatch {
			return deleted, nil
		}
		lo = "(" + ids[len(ids)-1]
	}
}

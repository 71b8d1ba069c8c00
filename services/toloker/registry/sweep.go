package registry

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// SweepInterval is how often Sweep looks for sessions past their deadline.
const SweepInterval = time.Second

// sweepBatch is the most expired sessions one tenant's sweep ends at once.
const sweepBatch = 200

// Sweep ends, with reason EXPIRED, every listed session of every tenant
// (tenants lists them) whose deadline has passed, until ctx ends: the
// session.ended event of a Toloker who walked away. Every replica may
// sweep; each expiry is recorded once (see the package doc).
func (r *Registry) Sweep(ctx context.Context, tenants func(context.Context) ([]string, error)) {
	t := time.NewTicker(SweepInterval)
	defer t.Stop()
	for {
		ts, err := tenants(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("registry: cannot list tenants for the expiry sweep", "error", err.Error())
		}
		for _, tenantID := range ts {
			for ctx.Err() == nil {
				n, err := r.SweepTenant(ctx, tenantID)
				if err != nil {
					if ctx.Err() == nil {
						r.log.Warn("registry: expiry sweep failed", "tenant_id", tenantID, "error", err.Error())
					}
					break
				}
				if n < sweepBatch {
					break
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// SweepTenant ends up to sweepBatch of the tenant's sessions past their
// deadline and returns how many were due.
func (r *Registry) SweepTenant(ctx context.Context, tenantID string) (int, error) {
	now := r.now()
	due, err := r.rdb.ZRangeByScore(ctx, r.deadlineKey(tenantID), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: sweepBatch}).Result()
	if err != nil {
		return 0, storage.Unavailable(err)
	}
	if len(due) == 0 {
		return 0, nil
	}
	sids := make([]string, len(due))
	users := make([]string, len(due))
	for i, m := range due {
		users[i], sids[i], _ = strings.Cut(m, "\t")
	}
	snaps, err := r.rdb.HMGet(ctx, r.snapKey(tenantID), sids...).Result()
	if err != nil {
		return 0, storage.Unavailable(err)
	}
	started := make([]*crowdgatev1.Session, len(due))
	var aids []string
	for i := range due {
		sess := &crowdgatev1.Session{}
		if raw, ok := snaps[i].(string); ok {
			if err := proto.Unmarshal([]byte(raw), sess); err != nil {
				r.log.Error("registry: a session snapshot cannot be read; its events carry its ids only", "session_id", sids[i], "error", err.Error())
			}
		}
		started[i] = sess
		if sess.GetAssignmentId() != "" {
			aids = append(aids, sess.GetAssignmentId())
		}
	}
	// The session as it is now, with the submits recorded since the
	// snapshot was taken (at its start): one read per expired session, in
	// one round trip.
	var kept map[string]*crowdgatev1.Session
	if r.sessions != nil && len(aids) > 0 {
		if kept, err = r.sessions.OfAssignments(ctx, tenantID, aids); err != nil {
			var un *serviceerror.Unavailable
			if errors.As(err, &un) {
				return 0, err // Redis: the next sweep tries again
			}
			// A record that cannot be read must not stop the tenant's
			// sweep for good: the events carry the snapshots, as before.
			r.log.Error("registry: sessions ending cannot be read; their session.ended events carry the state at their start", "error", err.Error())
			kept = nil
		}
	}
	log, seen := events.Keys(r.prefix, tenantID)
	calls := make([]storage.Call, 0, len(due))
	for i := range due {
		// What the registry knows is enough for the event when the snapshot
		// is gone (it never is while the session is listed).
		sess := started[i]
		sess.SessionId, sess.TenantId, sess.UserId = sids[i], tenantID, users[i]
		last := sess // session.started (if still owed) carries the start
		if cur, ok := kept[sess.GetAssignmentId()]; ok && cur.GetSessionId() == sids[i] {
			last = proto.CloneOf(cur)
			last.SessionId, last.TenantId, last.UserId = sids[i], tenantID, users[i]
		}
		expired := proto.CloneOf(last)
		expired.State = crowdgatev1.SessionState_SESSION_STATE_ENDED
		expired.EndReason = crowdgatev1.EndReason_END_REASON_EXPIRED
		expired.EndTime = last.GetExpireTime()
		if expired.EndTime == nil {
			expired.EndTime = timestamppb.New(now)
		}
		started, err := sessionEvent(events.TypeSessionStarted, sess)
		if err != nil {
			return 0, err
		}
		ended, err := sessionEvent(events.TypeSessionEnded, expired)
		if err != nil {
			return 0, err
		}
		calls = append(calls, storage.Call{
			Keys: []string{r.userKey(tenantID, users[i]), r.deadlineKey(tenantID), r.snapKey(tenantID), log, seen},
			Args: []any{sids[i], users[i], now.UnixMilli(), started.id, started.body, ended.id, ended.body, r.events.Retention().Milliseconds()},
		})
	}
	cmds, err := storage.EvalAll(ctx, r.rdb, expiredScript, calls, nil)
	if err != nil {
		return 0, storage.Unavailable(err)
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return 0, storage.Unavailable(err)
		}
	}
	r.events.Appended()
	return len(due), nil
}

package session_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// lateBan is the registry as a landing sees it when a ban is made while
// the landing lists the session: the Toloker's ban elsewhere sends the
// landing to Started, and the ban covering the pool is written right
// before Started lists the session.
type lateBan struct {
	*registry.Registry
	ban       func()
	checked   atomic.Bool
	abandoned atomic.Int32
}

func (l *lateBan) Started(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, error) {
	if l.checked.CompareAndSwap(false, true) {
		l.ban()
	}
	return l.Registry.Started(ctx, sess)
}

func (l *lateBan) Abandoned(ctx context.Context, tenantID, userID, sessionID string) error {
	l.abandoned.Add(1)
	return l.Registry.Abandoned(ctx, tenantID, userID, sessionID)
}

// TestABanMadeWhileTheSessionIsListedRefusesTheLanding: the registry
// answers the bans after listing the session, so a ban that came while
// the landing listed it still refuses the landing, the listing is taken
// back, and no session is stored or counted.
func TestABanMadeWhileTheSessionIsListedRefusesTheLanding(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	elsewhere := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	banInPool(t, env, "toloker-1", "ban_0", elsewhere.GetPoolId())
	late := &lateBan{Registry: env.Tolokers}
	late.ban = func() { banInPool(t, env, "toloker-1", "ban_1", pool.GetPoolId()) }
	svc := landRefused(t, env, late, aid)
	var banned *session.BannedError
	if _, err := svc.Find(ctx, aid); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Find after the refusal: %v, want no session stored", err)
	}
	if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); len(live) != 0 || late.abandoned.Load() != 1 {
		t.Errorf("the registry lists %v live after %d take-backs, want none after one", live, late.abandoned.Load())
	}
	// The refusal is remembered: no Toloka call while the ban lasts.
	asked := env.AssignmentGets(aid)
	if _, err := svc.Land(ctx, aid); !errors.As(err, &banned) || env.AssignmentGets(aid) != asked {
		t.Errorf("landing again: %v after %d more Toloka calls, want BannedError without one", err, env.AssignmentGets(aid)-asked)
	}
	// Lifted: the next landing asks Toloka again and starts the session.
	if err := env.Tolokers.Lift(ctx, tenant.Default, "toloker-1", "ban_1"); err != nil {
		t.Fatal(err)
	}
	l, err := svc.Land(ctx, aid)
	if err != nil || !l.Created {
		t.Fatalf("landing after the ban was lifted: %v, %v", l, err)
	}
	if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); len(live) != 1 {
		t.Errorf("the registry lists %v live, want the new session", live)
	}
	// Its end is counted once, however often it is ended.
	sess := exchange(t, env, l.Code).Session
	for range 2 {
		if _, err := svc.End(ctx, tenant.Default, sess.GetSessionId(), crowdgatev1.EndReason_END_REASON_ENDED); err != nil {
			t.Fatal(err)
		}
	}
	if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); len(live) != 0 {
		t.Errorf("the registry lists %v live after the end", live)
	}
}

// countingTolokers counts the registry calls a landing makes.
type countingTolokers struct {
	*registry.Registry
	restrictions, unlessRestricted, started, abandoned atomic.Int32
}

func (c *countingTolokers) Restrictions(ctx context.Context, tenantID, userID string) ([]restriction.Restriction, error) {
	c.restrictions.Add(1)
	return c.Registry.Restrictions(ctx, tenantID, userID)
}

func (c *countingTolokers) StartedUnlessRestricted(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, bool, error) {
	c.unlessRestricted.Add(1)
	return c.Registry.StartedUnlessRestricted(ctx, sess)
}

func (c *countingTolokers) Started(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, error) {
	c.started.Add(1)
	return c.Registry.Started(ctx, sess)
}

func (c *countingTolokers) Abandoned(ctx context.Context, tenantID, userID, sessionID string) error {
	c.abandoned.Add(1)
	return c.Registry.Abandoned(ctx, tenantID, userID, sessionID)
}

func (c *countingTolokers) calls() [4]int32 {
	return [4]int32{c.restrictions.Load(), c.unlessRestricted.Load(), c.started.Load(), c.abandoned.Load()}
}

// TestAFirstLandingReadsTheBansWhereItListsTheSession: a Toloker with no
// restriction is listed in the one registry call that reads their bans (no
// read of its own before it); so is one whose bans have all expired, and
// the call drops them; one with a ban elsewhere is listed by a second call
// once the ban is judged not to cover the pool; one banned in the pool is
// refused with nothing listed, so nothing is taken back.
func TestAFirstLandingReadsTheBansWhereItListsTheSession(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	elsewhere := env.NewPool(t, tenant.Default, nil)
	reg := &countingTolokers{Registry: env.Tolokers}
	svc, err := session.NewService(env.Config, reg)
	if err != nil {
		t.Fatal(err)
	}
	banInPool(t, env, "banned-elsewhere", "ban_banned-elsewhere", elsewhere.GetPoolId())
	banInPool(t, env, "banned-here", "ban_banned-here", pool.GetPoolId())
	// Banned in the pool and elsewhere until an hour ago.
	for _, p := range []string{pool.GetPoolId(), elsewhere.GetPoolId()} {
		if err := env.Tolokers.Restrict(ctx, tenant.Default, "ban-expired", restriction.Restriction{
			ID: "ban_expired-" + p, Scope: restriction.Pool, Target: restriction.Target{PoolID: p}, Expires: time.Now().Add(-time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		user string
		// calls: Restrictions, StartedUnlessRestricted, Started, Abandoned
		calls  [4]int32
		banned bool
		live   int
	}{
		{user: "no-bans", calls: [4]int32{0, 1, 0, 0}, live: 1},
		{user: "ban-expired", calls: [4]int32{0, 1, 0, 0}, live: 1},
		{user: "banned-elsewhere", calls: [4]int32{0, 1, 1, 0}, live: 1},
		{user: "banned-here", calls: [4]int32{0, 1, 0, 0}, banned: true, live: 0},
	} {
		t.Run(tc.user, func(t *testing.T) {
			*reg = countingTolokers{Registry: env.Tolokers}
			aid := env.StartAssignment(t, pool, tc.user)
			l, err := svc.Land(ctx, aid)
			var banned *session.BannedError
			switch {
			case tc.banned && !errors.As(err, &banned):
				t.Fatalf("Land: %v, want BannedError", err)
			case !tc.banned && (err != nil || !l.Created):
				t.Fatalf("Land: %v, %v; want a new session", l, err)
			}
			if got := reg.calls(); got != tc.calls {
				t.Errorf("registry calls (Restrictions, StartedUnlessRestricted, Started, Abandoned) = %v, want %v", got, tc.calls)
			}
			if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, tc.user); len(live) != tc.live {
				t.Errorf("the registry lists %d live sessions of %s, want %d", len(live), tc.user, tc.live)
			}
			// What is stored of the Toloker's bans: none expired.
			keys, err := env.Redis.Client.Keys(ctx, env.Redis.Prefix+"*ban:"+tc.user).Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				ids, err := env.Redis.Client.HKeys(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, id := range ids {
					if strings.HasPrefix(id, "ban_expired-") {
						t.Errorf("the expired ban %s is still stored after the landing", id)
					}
				}
			}
		})
	}
}

// TestAListingSentAgainAfterABanIsAnsweredAsListed: a guarded Started sent
// again after its reply was lost (the autopipeliner resends a batch that
// failed on the network) finds its own listing and answers it as listed,
// with the bans as they are now, so the landing takes the listing back
// instead of leaving it counted for a session never stored.
func TestAListingSentAgainAfterABanIsAnsweredAsListed(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	sess := &crowdgatev1.Session{SessionId: "ses_1", TenantId: tenant.Default, UserId: "toloker-1", PoolId: pool.GetPoolId(),
		ProjectId: pool.GetProjectId(), CreateTime: timestamppb.Now(), ExpireTime: timestamppb.New(time.Now().Add(time.Hour))}
	if _, listed, err := env.Tolokers.StartedUnlessRestricted(ctx, sess); err != nil || !listed {
		t.Fatalf("first call: listed %v, %v; want listed", listed, err)
	}
	banInPool(t, env, "toloker-1", "ban_1", pool.GetPoolId())
	rs, listed, err := env.Tolokers.StartedUnlessRestricted(ctx, sess)
	if err != nil || !listed || len(rs) != 1 || rs[0].ID != "ban_1" {
		t.Fatalf("the same call sent again: listed %v, restrictions %v, %v; want listed with ban_1", listed, rs, err)
	}
	// And a session not listed yet is held back.
	other := proto.CloneOf(sess)
	other.SessionId = "ses_2"
	if _, listed, err := env.Tolokers.StartedUnlessRestricted(ctx, other); err != nil || listed {
		t.Fatalf("a new session of the banned Toloker: listed %v, %v; want held back", listed, err)
	}
	if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); len(live) != 1 {
		t.Errorf("the registry lists %d live sessions, want the first only", len(live))
	}
}

// banWhileStored is the registry as a landing sees it when a ban is made
// after the session is listed and before it is stored: the ban looked for
// the Toloker's live sessions while this one was not stored yet, found
// nothing to end, and only its restriction is left.
type banWhileStored struct {
	*registry.Registry
	ban       func()
	sessionID atomic.Value
}

func (b *banWhileStored) StartedUnlessRestricted(ctx context.Context, sess *crowdgatev1.Session) ([]restriction.Restriction, bool, error) {
	rs, listed, err := b.Registry.StartedUnlessRestricted(ctx, sess)
	b.sessionID.Store(sess.GetSessionId())
	b.ban()
	return rs, listed, err
}

// TestABanMadeWhileTheSessionIsStoredEndsIt: the registry answers the
// bans again once the session is stored (in the script that records its
// session.started event), so a session a ban could not see yet is ended
// by the landing itself (REVOKED) and the Toloker is refused, as the ban
// would have done.
func TestABanMadeWhileTheSessionIsStoredEndsIt(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	reg := &banWhileStored{Registry: env.Tolokers}
	reg.ban = func() { banInPool(t, env, "toloker-1", "ban_1", pool.GetPoolId()) }
	svc := landRefused(t, env, reg, aid)
	var banned *session.BannedError
	sid, _ := reg.sessionID.Load().(string)
	sess, err := svc.Get(ctx, tenant.Default, sid)
	if err != nil || sess.GetState() != crowdgatev1.SessionState_SESSION_STATE_ENDED || sess.GetEndReason() != crowdgatev1.EndReason_END_REASON_REVOKED {
		t.Fatalf("the stored session: %v, %v; want it ended, REVOKED", sess, err)
	}
	if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); len(live) != 0 {
		t.Errorf("the registry lists %v live, want none", live)
	}
	if n, err := svc.LiveCount(ctx, tenant.Default, pool.GetPoolId()); err != nil || n != 0 {
		t.Errorf("the pool counts %d live sessions (%v), want none", n, err)
	}
	if _, err := svc.Land(ctx, aid); !errors.As(err, &banned) {
		t.Errorf("landing again: %v, want BannedError", err)
	}
}

// banInPool records a ban of user in poolID in the registry (as the ban
// service does first).
func banInPool(t *testing.T, env *sessiontest.Env, user, id, poolID string) {
	t.Helper()
	if err := env.Tolokers.Restrict(ctx, tenant.Default, user, restriction.Restriction{
		ID: id, Scope: restriction.Pool, Target: restriction.Target{PoolID: poolID},
	}); err != nil {
		t.Fatal(err)
	}
}

// landRefused builds the sessions over tolokers and lands aid, which must
// be refused for a ban in its pool.
func landRefused(t *testing.T, env *sessiontest.Env, tolokers session.Tolokers, aid string) *session.Service {
	t.Helper()
	svc, err := session.NewService(env.Config, tolokers)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Land(ctx, aid)
	var banned *session.BannedError
	if !errors.As(err, &banned) || banned.Scope != "pool" {
		t.Fatalf("Land: %v, want BannedError in the pool", err)
	}
	return svc
}

package session_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/ratelimit"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// losingEnv returns sessions whose first create is lost: its reply (drop
// false) or the create itself (drop true).
func losingEnv(t *testing.T, drop bool) (*sessiontest.Env, *redistest.LoseReply) {
	t.Helper()
	hook := &redistest.LoseReply{Script: readScript(t, "create.lua"), Drop: drop}
	return hookedEnv(t, hook), hook
}

// A session stored whose reply was lost is not taken back from the Toloker
// registry: the landing reads it back and goes on, the registry lists it,
// and its end records its session.started and session.ended events. (Taken
// back, the session lived on uncounted, and its end raised no event.)
func TestASessionStoredWhoseReplyWasLostIsKept(t *testing.T) {
	env, hook := losingEnv(t, false)

	pool := env.NewPool(t, tenant.Default, nil)
	l, err := env.Sessions.Land(ctx, env.StartAssignment(t, pool, "toloker-1"))
	if hook.Lost() != 1 {
		t.Fatalf("the hook lost %d create replies; the test needs one", hook.Lost())
	}
	if err != nil {
		t.Fatalf("Land whose stored session's reply was lost: %v; want the session", err)
	}
	ex, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code)
	if err != nil {
		t.Fatal(err)
	}
	sid := ex.GetSession().GetSessionId()
	live, err := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0].SessionID != sid {
		t.Errorf("the registry lists %v live; want session %s", live, sid)
	}
	got := endAndListEvents(t, env, sid)
	if strings.Join(got, " ") != "session.started session.ended" && strings.Join(got, " ") != "session.ended session.started" {
		t.Errorf("the session's events: %v; want session.started and session.ended", got)
	}
}

// A create that never reached Redis is taken back from the registry and
// its pool's listing, and its resolve lock is released, so the Toloker's next landing starts the
// session at once rather than waiting for the lock to expire.
func TestASessionNeverStoredIsTakenBackAndItsLockReleased(t *testing.T) {
	env, hook := losingEnv(t, true)
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	if _, err := env.Sessions.Land(ctx, aid); err == nil || hook.Lost() != 1 {
		t.Fatalf("Land whose create was lost: %v (%d lost); want an error", err, hook.Lost())
	}
	if live, err := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); err != nil || len(live) != 0 {
		t.Errorf("the registry lists %v, %v; want nothing (the session was not stored)", live, err)
	}
	if n := env.Redis.Client.Exists(ctx, env.Redis.Prefix+"ses-lock:{"+aid+"}").Val(); n != 0 {
		t.Errorf("the resolve lock is still held after the failed landing")
	}
	if n, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); err != nil || n != 0 {
		t.Errorf("the pool lists %d, %v live sessions; want none (the session was not stored)", n, err)
	}
	if s := started(t, env, aid); s.GetUserId() != "toloker-1" {
		t.Errorf("the next landing's session is %q's", s.GetUserId())
	}
}

// A session store sent twice for one landing (its first reply lost, as in
// a Redis restart) is this landing's own session, not another's: it stays
// counted by the Toloker registry and listed live in its pool, so its end
// records its events and an archive sees it. (Taken for another landing's,
// it was taken back from both while it went on.)
func TestASessionStoreSentTwiceIsTheLandingsOwn(t *testing.T) {
	hook := &redistest.Resend{Script: readScript(t, "create.lua"), Once: true}
	env := hookedEnv(t, hook)
	pool := env.NewPool(t, tenant.Default, nil)
	sess := started(t, env, env.StartAssignment(t, pool, "toloker-1"))
	if !hook.Done() {
		t.Fatal("the hook did not run the store twice; the test needs it to")
	}
	if live, err := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); err != nil || len(live) != 1 || live[0].SessionID != sess.GetSessionId() {
		t.Errorf("the registry lists %v, %v; want session %s", live, err, sess.GetSessionId())
	}
	if n, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); err != nil || n != 1 {
		t.Errorf("LiveCount = %d, %v; want the session counted", n, err)
	}
	got := endAndListEvents(t, env, sess.GetSessionId())
	slices.Sort(got)
	if strings.Join(got, " ") != "session.ended session.started" {
		t.Errorf("the session's events: %v; want session.started and session.ended", got)
	}
}

// A landing whose first step (taking the resolve lock) is sent twice, its
// first reply lost, finds the lock held with its own token: it goes on to
// ask Toloka rather than waiting, as for another landing, until the lock
// expires, and spends the assignment's landing limit once.
func TestALandingWhoseLockStepIsSentTwiceGoesOn(t *testing.T) {
	land, err := os.ReadFile("lua/land.lua")
	if err != nil {
		t.Fatal(err)
	}
	hook := &redistest.Resend{Script: redistest.ScriptOf(ratelimit.ReserveLua() + string(land)), Once: true}
	r := redistest.New(t)
	hooked := r.HookedClient(t, hook)
	// The assignment's landing limit has room for one landing: the step's
	// second run must not spend it again.
	lim, err := ratelimit.New(ratelimit.Config{Client: r.Client, Prefix: r.Prefix + "ratelimit:", MaxWait: -1})
	if err != nil {
		t.Fatal(err)
	}
	env := sessiontest.New(t, sessiontest.Options{Redis: r, Session: func(c *session.Config) {
		c.Redis = hooked
		c.Settings.ResolveTimeout = time.Hour // how long it would wait for itself
		c.Limiter, c.PerAssignment = lim, ratelimit.Limit{Rate: 1, Per: time.Hour, Burst: 1}
	}})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second) // a bound for the failure report only
	defer cancel()
	l, err := env.Sessions.Land(lctx, aid)
	if !hook.Done() {
		t.Fatal("the hook did not run the lock step twice; the test needs it to")
	}
	if err != nil || l.RedirectURL == "" {
		t.Fatalf("Land whose lock step was sent twice = %v, %v; want the session at once", l, err)
	}
	if n := env.AssignmentGets(aid); n != 1 {
		t.Errorf("Toloka was asked %d times, want once", n)
	}
}

// A code exchange sent twice for one call (its first reply lost) is
// answered with the session, not as a code used before: the code is spent
// once, by this exchange. A second exchange of the code is still refused.
func TestACodeExchangeSentTwiceAnswersTheSession(t *testing.T) {
	hook := &redistest.Resend{Script: readScript(t, "exchange.lua"), Once: true}
	env := hookedEnv(t, hook)
	pool := env.NewPool(t, tenant.Default, nil)
	l := land(t, env, env.StartAssignment(t, pool, "toloker-1"))
	resp, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code)
	if !hook.Done() {
		t.Fatal("the hook did not run the exchange twice; the test needs it to")
	}
	if err != nil || resp.GetSession().GetUserId() != "toloker-1" {
		t.Fatalf("Exchange sent twice = %v, %v; want toloker-1's session", resp, err)
	}
	if _, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code); err == nil {
		t.Error("the code was exchanged a second time")
	}
}

// endAndListEvents ends session sid (close_session) and returns the types
// of its events in the tenant's log, in the log's order.
func endAndListEvents(t *testing.T, env *sessiontest.Env, sid string) []string {
	t.Helper()
	if _, err := env.Sessions.End(ctx, tenant.Default, sid, crowdgatev1.EndReason_END_REASON_CLOSE_SESSION); err != nil {
		t.Fatal(err)
	}
	evs, _, err := env.Events.List(ctx, tenant.Default, events.Query{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range evs {
		if ev.GetSession().GetSessionId() == sid {
			got = append(got, ev.GetType())
		}
	}
	return got
}

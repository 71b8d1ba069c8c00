package session_test

import (
	"errors"
	"testing"
	"time"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// An archive's fence stops sessions from starting in a pool and counts the
// live ones in the same step: a landing in a fenced pool is asked to try
// again shortly (the archive may yet be refused), one in a sealed pool is
// closed, and either leaves nothing behind (no session, no listing, no registry count); a
// fence is its holder's to lift; a sealed pool never starts a session
// again.
func TestAFencedPoolStartsNoSession(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	started(t, env, env.StartAssignment(t, pool, "toloker-1"))
	fence := func(holder string) (int64, error) {
		return env.Sessions.Fence(ctx, tenant.Default, pool.PoolId, holder, time.Minute)
	}
	wantRefused := func(when, aid string, sealed bool) {
		t.Helper()
		_, err := env.Sessions.Land(ctx, aid)
		var closed *session.ClosedError
		var unavailable *serviceerror.Unavailable
		switch {
		case sealed && !errors.As(err, &closed):
			t.Errorf("%s: Land = %v, want the pool closed", when, err)
		case !sealed && (!errors.As(err, &unavailable) || unavailable.RetryAfter <= 0):
			t.Errorf("%s: Land = %v, want Unavailable with a Retry-After (the archive may yet be refused)", when, err)
		}
	}
	if n, err := fence("archive-a"); err != nil || n != 1 {
		t.Fatalf("Fence = %d, %v; want the 1 live session counted", n, err)
	}
	aid := env.StartAssignment(t, pool, "toloker-2")
	wantRefused("fenced", aid, false)
	if live, err := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-2"); err != nil || len(live) != 0 {
		t.Errorf("the registry lists %v, %v for the refused Toloker; want nothing", live, err)
	}
	if n, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); err != nil || n != 1 {
		t.Errorf("LiveCount after the refused landing = %d, %v; want 1 (the first Toloker only)", n, err)
	}

	// Another archive neither takes the fence nor lifts it.
	var unavailable *serviceerror.Unavailable
	if _, err := fence("archive-b"); !errors.As(err, &unavailable) {
		t.Errorf("a second archive's Fence = %v, want Unavailable (another archive is checking the pool)", err)
	}
	if err := env.Sessions.Unfence(ctx, tenant.Default, pool.PoolId, "archive-b"); err != nil {
		t.Fatal(err)
	}
	wantRefused("after another archive's Unfence", aid, false)

	// Its holder lifts it: the Toloker lands.
	if err := env.Sessions.Unfence(ctx, tenant.Default, pool.PoolId, "archive-a"); err != nil {
		t.Fatal(err)
	}
	if s := started(t, env, aid); s.GetUserId() != "toloker-2" {
		t.Errorf("after Unfence the session is %q's, want toloker-2's", s.GetUserId())
	}

	// A fence its archive could not settle (Toloka may archive the pool
	// yet) stays up; the next archive takes it over, and lifting it then
	// leaves it unsettled, not open.
	if _, err := fence("archive-x"); err != nil {
		t.Fatal(err)
	}
	if err := env.Sessions.LeaveFenced(ctx, tenant.Default, pool.PoolId, "archive-x", time.Minute); err != nil {
		t.Fatal(err)
	}
	later := env.StartAssignment(t, pool, "toloker-4")
	wantRefused("left unsettled", later, false)
	if n, err := fence("archive-y"); err != nil || n != 2 {
		t.Fatalf("the next archive's Fence of an unsettled pool = %d, %v; want it taken over, 2 live sessions", n, err)
	}
	if err := env.Sessions.Unfence(ctx, tenant.Default, pool.PoolId, "archive-y"); err != nil {
		t.Fatal(err)
	}
	wantRefused("after the archive that took over an unsettled fence lifted it", later, false)

	// Sealed, the pool stays fenced whoever lifts a fence.
	if n, err := fence("archive-c"); err != nil || n != 2 {
		t.Fatalf("Fence = %d, %v; want 2 live sessions", n, err)
	}
	if err := env.Sessions.Seal(ctx, tenant.Default, pool.PoolId); err != nil {
		t.Fatal(err)
	}
	if err := env.Sessions.Unfence(ctx, tenant.Default, pool.PoolId, "archive-c"); err != nil {
		t.Fatal(err)
	}
	wantRefused("sealed", env.StartAssignment(t, pool, "toloker-3"), true)
	if n, err := fence("archive-d"); err != nil || n != 2 {
		t.Errorf("Fence of a sealed pool = %d, %v; want its 2 live sessions counted", n, err)
	}
}

// A session is stored only once its pool listed it: when the listing
// fails, or its reply is lost, the landing fails and nothing is stored or
// left listed (the next landing asks Toloka again and starts the session),
// so an archive never misses a live session, nor counts one that never
// started.
func TestASessionIsStoredOnlyOnceItsPoolListedIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		drop bool
	}{{"the listing failed", true}, {"its reply was lost", false}} {
		t.Run(tc.name, func(t *testing.T) {
			hook := &redistest.LoseReply{Script: readScript(t, "enlist.lua"), Drop: tc.drop}
			env := hookedEnv(t, hook)
			pool := env.NewPool(t, tenant.Default, nil)
			aid := env.StartAssignment(t, pool, "toloker-1")
			if _, err := env.Sessions.Land(ctx, aid); err == nil || hook.Lost() != 1 {
				t.Fatalf("Land whose listing failed = %v (%d lost); want an error", err, hook.Lost())
			}
			if live, err := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); err != nil || len(live) != 0 {
				t.Errorf("the registry lists %v, %v; want nothing (no session was stored)", live, err)
			}
			if n, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); err != nil || n != 0 {
				t.Errorf("after the failed landing LiveCount = %d, %v; want 0", n, err)
			}
			s := started(t, env, aid)
			if n := env.AssignmentGets(aid); n != 2 {
				t.Errorf("Toloka was asked %d times; want 2 (the failed landing stored nothing)", n)
			}
			if n, err := env.Sessions.LiveCount(ctx, tenant.Default, pool.PoolId); err != nil || n != 1 {
				t.Errorf("LiveCount = %d, %v; want session %s", n, err, s.GetSessionId())
			}
		})
	}
}

package session_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
	"github.com/crowdgate/crowdgate/services/toloker/registry"
	"github.com/crowdgate/crowdgate/services/toloker/session"
)

// lateBan is the registry as a landing sees it when a ban is made while
// Toloka is asked: the check before the session starts finds no ban; the
// ban is written right after it.
type lateBan struct {
	*registry.Registry
	ban     func()
	checked atomic.Bool
}

func (l *lateBan) Restrictions(ctx context.Context, tenantID, userID string) ([]restriction.Restriction, error) {
	rs, err := l.Registry.Restrictions(ctx, tenantID, userID)
	if l.checked.CompareAndSwap(false, true) {
		l.ban()
	}
	return rs, err
}

// TestABanMadeWhileTolokaIsAskedRefusesTheLanding: the registry lists the
// session before it is stored and answers the bans after listing it, so a
// ban that came after the landing's first check still refuses it, and no
// session is stored or counted.
func TestABanMadeWhileTolokaIsAskedRefusesTheLanding(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	pool := env.NewPool(t, tenant.Default, nil)
	aid := env.StartAssignment(t, pool, "toloker-1")
	late := &lateBan{Registry: env.Tolokers}
	late.ban = func() {
		if err := env.Tolokers.Restrict(ctx, tenant.Default, "toloker-1", restriction.Restriction{
			ID: "ban_1", Scope: restriction.Pool, Target: restriction.Target{PoolID: pool.GetPoolId()},
		}); err != nil {
			t.Fatal(err)
		}
	}
	svc, err := session.NewService(env.Config, late)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Land(ctx, aid)
	var banned *session.BannedError
	if !errors.As(err, &banned) || banned.Scope != "pool" {
		t.Fatalf("Land: %v, want BannedError in the pool", err)
	}
	if _, err := svc.Find(ctx, aid); !errors.Is(err, session.ErrNoSession) {
		t.Errorf("Find after the refusal: %v, want no session stored", err)
	}
	if live, _ := env.Tolokers.LiveSessions(ctx, tenant.Default, "toloker-1"); len(live) != 0 {
		t.Errorf("the registry lists %v live, want none", live)
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

package session_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
)

// resendSwaps runs every pipeline that holds a session swap (swap.lua)
// twice, as go-redis does when a batch's reply is lost and the batch is
// sent again: the second run's answers are the ones the caller sees.
type resendSwaps struct {
	swap redistest.Script
	sent int
	// between, when set, runs once, between the next first run and its
	// resend, as another replica's change could.
	between func()
}

func (h *resendSwaps) resent() {
	h.sent++
	if b := h.between; b != nil {
		h.between = nil
		b()
	}
}

func (h *resendSwaps) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *resendSwaps) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.swap.Runs(cmd) {
			_ = next(ctx, cmd)
			h.resent()
		}
		return next(ctx, cmd)
	}
}

func (h *resendSwaps) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if h.swap.Runs(c) {
				_ = next(ctx, cmds)
				h.resent()
				break
			}
		}
		return next(ctx, cmds)
	}
}

// resendingEnv returns sessions whose swaps are each sent twice (hook).
func resendingEnv(t *testing.T) (*sessiontest.Env, *resendSwaps) {
	t.Helper()
	hook := &resendSwaps{swap: readScript(t, "swap.lua")}
	return hookedEnv(t, hook), hook
}

// TestAChangeSentTwiceIsAppliedOnce: a session's changes (RecordSubmit's
// totals, End) are read, changed and swapped in through the autopipelined
// client, whose batches may be sent again after a lost reply. A swap sent
// twice must count once: a Toloker's totals that doubled would misreport
// what they were paid.
func TestAChangeSentTwiceIsAppliedOnce(t *testing.T) {
	env, hook := resendingEnv(t)
	pool := env.NewPool(t, tenant.Default, nil)
	sid := started(t, env, env.StartAssignment(t, pool, "toloker-1")).GetSessionId()
	for i := range 4 {
		version := ""
		if i%2 == 1 {
			// As Submit does: from the session it read.
			var err error
			if _, version, err = env.Sessions.Read(ctx, tenant.Default, sid); err != nil {
				t.Fatal(err)
			}
		}
		if err := env.Sessions.RecordSubmit(ctx, tenant.Default, sid, version, money.MustParse("0.25")); err != nil {
			t.Fatal(err)
		}
	}
	got, err := env.Sessions.Get(ctx, tenant.Default, sid)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSubmitsCount() != 4 || got.GetRewardTotal() != "1" {
		t.Errorf("after 4 submits of 0.25, each change sent twice: submits %d, reward %s; want 4, 1", got.GetSubmitsCount(), got.GetRewardTotal())
	}
	if hook.sent < 4 {
		t.Fatalf("the hook resent %d swaps; the test needs every change resent", hook.sent)
	}
	ended, err := env.Sessions.End(ctx, tenant.Default, sid, crowdgatev1.EndReason_END_REASON_CLOSE_SESSION)
	if err != nil || ended.GetEndReason() != crowdgatev1.EndReason_END_REASON_CLOSE_SESSION || ended.GetSubmitsCount() != 4 {
		t.Errorf("End, sent twice = %v, %v", ended, err)
	}
}

// TestAChangeResentAfterAnotherChangeIsAppliedOnce: between a swap that
// was applied and its resend, another replica changes the session (a
// submit of its own). The resend must still find that it was applied,
// not add its submit a second time on top of the other.
func TestAChangeResentAfterAnotherChangeIsAppliedOnce(t *testing.T) {
	env, hook := resendingEnv(t)
	// The other replica: the same Redis and prefix, no resends.
	other := sessiontest.New(t, sessiontest.Options{Redis: env.Redis})
	pool := env.NewPool(t, tenant.Default, nil)
	sid := started(t, env, env.StartAssignment(t, pool, "toloker-1")).GetSessionId()
	hook.between = func() {
		if err := other.Sessions.RecordSubmit(ctx, tenant.Default, sid, "", money.MustParse("0.5")); err != nil {
			t.Error(err)
		}
	}
	if err := env.Sessions.RecordSubmit(ctx, tenant.Default, sid, "", money.MustParse("0.25")); err != nil {
		t.Fatal(err)
	}
	got, err := env.Sessions.Get(ctx, tenant.Default, sid)
	if err != nil {
		t.Fatal(err)
	}
	if hook.between != nil || got.GetSubmitsCount() != 2 || got.GetRewardTotal() != "0.75" {
		t.Errorf("a submit of 0.25 resent after another replica's 0.5 (which ran: %t): submits %d, reward %s; want 2, 0.75",
			hook.between == nil, got.GetSubmitsCount(), got.GetRewardTotal())
	}
}

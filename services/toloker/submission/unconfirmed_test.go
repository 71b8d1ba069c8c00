package submission

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// loseReply lets the first command or pipeline running script reach Redis,
// then reports its reply lost (a read timeout: go-redis does not resend
// then).
type loseReply struct {
	script redistest.Script
	mu     sync.Mutex
	done   bool
}

var errReplyLost = errors.New("i/o timeout (the reply was lost)")

func (h *loseReply) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *loseReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && h.take(cmd) {
			cmd.SetErr(errReplyLost)
			return errReplyLost
		}
		return err
	}
}
func (h *loseReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if c.Err() == nil && h.take(c) {
				for _, c := range cmds {
					c.SetErr(errReplyLost)
				}
				return errReplyLost
			}
		}
		return err
	}
}
func (h *loseReply) take(cmd redis.Cmder) bool {
	if !h.script.Runs(cmd) {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.done {
		return false
	}
	h.done = true
	return true
}

// TestASubmitWithoutRetryIDWhoseReplyIsLostSaysNotToResendBlindly: the
// accept reached Redis but its reply was lost. Without a retry_id nothing
// can tell a resend from new work, so a resend is paid again (the
// money-path review showed Toloka paying twice). The answer used to be
// the generic "try again shortly"; it now says to look before resending,
// and to give retry_ids.
func TestASubmitWithoutRetryIDWhoseReplyIsLostSaysNotToResendBlindly(t *testing.T) {
	f := newFixture(t, nil)
	f.svc = f.newService(func(c *Config) {
		c.Redis = f.redis.HookedClient(t, &loseReply{script: redistest.ReadScript(t, "lua/accept.lua")})
	})
	s := f.toloker(tolokasim.UserState{})
	_, err := f.svc.Submit(f.ctx, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, Reward: "0.75"})
	var un *serviceerror.Unavailable
	if !errors.As(err, &un) {
		t.Fatalf("a submit whose reply was lost answered %v, want UNAVAILABLE", err)
	}
	for _, want := range []string{"may or may not have been stored", "ListSubmissions", "retry_id"} {
		if !strings.Contains(un.Message, want) {
			t.Errorf("the answer %q does not say %q", un.Message, want)
		}
	}
	if got := f.totals(); got.GetQueued()+got.GetDelivered() != 1 {
		t.Errorf("the submit was stored %d times, want once (only its reply was lost)", got.GetQueued()+got.GetDelivered())
	}
}

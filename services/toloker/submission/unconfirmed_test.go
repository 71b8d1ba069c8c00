package submission

import (
	"errors"
	"strings"
	"testing"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestASubmitWithoutRetryIDWhoseReplyIsLostSaysNotToResendBlindly: the
// accept reached Redis but its reply was lost. Without a retry_id nothing
// can tell a resend from new work, so a resend is paid again (the
// money-path review showed Toloka paying twice). The answer used to be
// the generic "try again shortly"; it now says to look before resending,
// and to give retry_ids.
func TestASubmitWithoutRetryIDWhoseReplyIsLostSaysNotToResendBlindly(t *testing.T) {
	f := newFixture(t, nil)
	f.svc = f.newService(func(c *Config) {
		c.Redis = f.redis.HookedClient(t, &redistest.LoseReply{Script: redistest.ReadScript(t, "lua/accept.lua")})
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

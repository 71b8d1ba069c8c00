package landing_test

import (
	"net/http"
	"testing"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/sessiontest"
)

// A Toloker whose session ended because Toloka's answer to their submit
// said they may not work on the task (restriction_match, the pool's filter
// no longer matching) lands again: they see that they cannot take the task
// (403), not "Your work on this task is finished. Thank you!" (410), which
// closing and expiry keep, and a revoke too (a ban that revoked it may be
// lifted since: TestBanInAProject). Found by the Toloker-side review
// (revC).
func TestASessionEndedByARefusalShowsTheRefusalPage(t *testing.T) {
	env := sessiontest.New(t, sessiontest.Options{})
	start := serveLanding(t, env, nil)
	pool := env.NewPool(t, tenant.Default, nil)
	for i, tc := range []struct {
		reason crowdgatev1.EndReason
		status int
		title  string
	}{
		{crowdgatev1.EndReason_END_REASON_RESTRICTED, http.StatusForbidden, "You cannot take this task"},
		{crowdgatev1.EndReason_END_REASON_FILTERED_OUT, http.StatusForbidden, "You cannot take this task"},
		{crowdgatev1.EndReason_END_REASON_REVOKED, http.StatusGone, "Your session has ended"},
		{crowdgatev1.EndReason_END_REASON_CLOSE_SESSION, http.StatusGone, "Your session has ended"},
	} {
		t.Run(tc.reason.String(), func(t *testing.T) {
			aid := env.StartAssignment(t, pool, "toloker-"+string(rune('a'+i)))
			l, err := env.Sessions.Land(ctx, aid)
			if err != nil {
				t.Fatal(err)
			}
			ex, err := env.Sessions.Exchange(ctx, tenant.Default, l.Code)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := env.Sessions.End(ctx, tenant.Default, ex.GetSession().GetSessionId(), tc.reason); err != nil {
				t.Fatal(err)
			}
			checkPage(t, get(t, noRedirects, start+"?assignment_id="+aid), tc.status, tc.title)
		})
	}
}
